/**
 * A service that registers itself with rollcall and, if told to, calls another service
 * through the SDK. Run two of them:
 *
 *   node dist/examples/greeter.js --name greeter
 *   node dist/examples/greeter.js --name front --calls greeter
 *   curl http://127.0.0.1:<front's port>/hello
 *
 * Each listens on a free port, registers itself (heartbeats keep it alive), and on
 * SIGTERM/SIGINT drains, deregisters and exits.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import { RegistryClient } from 'rollcall/client'

const { values } = parseArgs({
  options: {
    name: { type: 'string', default: 'greeter' },
    calls: { type: 'string' },
    registry: { type: 'string', default: process.env.ROLLCALL_URL ?? 'http://127.0.0.1:7733' },
    drain: { type: 'string', default: '1000' },
  },
})
const name = values.name as string

const registry = new RegistryClient({
  url: values.registry as string,
  onError: (err) => console.error(`[${name}] rollcall: ${err.message}`),
})
// The service this one calls, cached and balanced by the SDK; ready once the first snapshot is in.
const upstream = values.calls === undefined ? undefined : registry.service(values.calls, { balancer: 'least-request' })

const server = createServer(async (req, res) => {
  if (req.url !== '/hello') return void res.writeHead(404).end()
  if (upstream === undefined) return void res.end(`hello from ${name}`)
  try {
    const answer = await upstream.fetch('/hello', { timeoutMs: 2000 })
    res.end(`${name} asked ${upstream.name}: ${await answer.text()}`)
  } catch (err) {
    res.writeHead(503).end(`${name} could not reach ${upstream.name}: ${(err as Error).message}`)
  }
})

server.listen(0, '127.0.0.1', async () => {
  const { port } = server.address() as AddressInfo
  const me = await registry.register({ service: name, host: '127.0.0.1', port, ttlSeconds: 10 })
  await upstream?.ready()
  registry.drainOnSignal({ drainMs: Number(values.drain), onDrained: () => server.close(() => process.exit(0)) })
  console.log(JSON.stringify({ name, id: me.id, port }))
})
