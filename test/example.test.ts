import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { resolve } from 'node:path'
import { createInterface } from 'node:readline'
import t from 'tap'
import { startTestServer } from './helpers/server.js'

const GREETER = resolve(import.meta.dirname, '../dist/examples/greeter.js')

/** Starts the built example and resolves with its process and the port it printed. */
async function runExample(registryUrl: string, args: string[]) {
  const child = spawn(process.execPath, [GREETER, ...args, '--registry', registryUrl, '--drain', '50'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string]
  return { child, ...(JSON.parse(line) as { name: string; id: string; port: number }) }
}

t.test('examples/greeter: a service registers itself and calls another through the SDK', async (t) => {
  const s = await startTestServer(t)
  const greeter = await runExample(s.url, ['--name', 'greeter'])
  const front = await runExample(s.url, ['--name', 'front', '--calls', 'greeter'])
  t.teardown(() => {
    greeter.child.kill('SIGKILL')
    front.child.kill('SIGKILL')
  })
  t.ok(s.registry.get('greeter', greeter.id), 'greeter registered itself')
  t.ok(s.registry.get('front', front.id), 'front registered itself')
  const res = await fetch(`http://127.0.0.1:${front.port}/hello`)
  t.equal(await res.text(), 'front asked greeter: hello from greeter')

  // SIGTERM: drain, deregister, exit 0.
  const exited = once(front.child, 'exit')
  front.child.kill('SIGTERM')
  t.same((await exited)[0], 0, 'front exited cleanly')
  t.equal(s.registry.get('front', front.id), undefined, 'and deregistered itself first')
})
