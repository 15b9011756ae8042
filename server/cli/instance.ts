/**
 * The commands that change one instance: `register` (held until Ctrl-C), `deregister`
 * and `drain`.
 */
import type { Instance } from '../../client-sdk/protocol.js'
import { RegisterBody } from '../../client-sdk/protocol.js'
import { RegistryClient } from '../../client-sdk/registry-client.js'
import type { Command, Parsed } from './command.js'
import {
  CONNECTION_HELP,
  CliError,
  EXIT_ERROR,
  EXIT_OK,
  UsageError,
  checkName,
  describeError,
  help,
  intFlag,
  pairsFlag,
  parse,
  positionals,
  printJson,
  restFor,
} from './command.js'
import { address } from './output.js'

/**
 * `rollcall register <service> --host H --port P`: registers through the SDK, which
 * heartbeats every ttl/3 and registers again if the server forgets the instance, until
 * SIGINT or SIGTERM; then it deregisters and exits 0.
 */
export const registerCommand: Command = {
  name: 'register',
  help: `Usage: rollcall register <service> --host HOST --port PORT [options]

Registers an instance of <service> and keeps its lease alive with heartbeats (every ttl/3)
until Ctrl-C (SIGINT) or SIGTERM, then deregisters it. For a process that cannot use the
SDK itself: run this beside it. If the server forgets the instance (a restart on an empty
store), it is registered again.

Instance:
  --host HOST        hostname or IP the instance is reached at (required)
  --port PORT        its port (required)
  --id ID            the instance id (default: a random UUID)
  --ttl SECONDS      the lease (default 30)
  --scheme SCHEME    http, https, grpc or tcp (default http)
  --zone ZONE        its zone
  --version VERSION  its version
  --weight N         0..1000 (default 100)
  --tag TAG          a tag; repeat for several
  --meta KEY=VALUE   metadata; repeat for several

${CONNECTION_HELP}

Output: one line once registered (--json: the instance), one once deregistered.

Example:
  rollcall register orders --host 10.0.0.7 --port 8080 --ttl 10 --zone eu-1a --tag canary`,
  async run(argv) {
    const p = parse(argv, {
      host: { type: 'string' },
      port: { type: 'string' },
      id: { type: 'string' },
      ttl: { type: 'string' },
      scheme: { type: 'string' },
      zone: { type: 'string' },
      version: { type: 'string' },
      weight: { type: 'string' },
      tag: { type: 'string', multiple: true },
      meta: { type: 'string', multiple: true },
    })
    if (p.help) return help(this)
    const [service] = positionals(p, ['service']) as [string]
    checkName(service, 'service')
    const id = p.values.id as string | undefined
    if (id !== undefined) checkName(id, 'id')
    const body = registerBody(p)
    return hold(p, service, id, body)
  },
}

/** `rollcall deregister <service> <id>`. */
export const deregisterCommand: Command = {
  name: 'deregister',
  help: `Usage: rollcall deregister <service> <id> [options]

Removes the instance at once. Exits 1 if it is not registered. An instance whose process
still runs with the SDK registers itself again on its next heartbeat: drain and stop it
instead when that is what you mean.

${CONNECTION_HELP}`,
  async run(argv) {
    const p = parse(argv, {})
    if (p.help) return help(this)
    const [service, id] = instancePath(p)
    const res = await restFor(p).request('DELETE', `/v1/services/${service}/instances/${id}`)
    if (res.status === 404) throw new CliError(`instance ${service}/${id} is not registered`)
    if (p.json) printJson({ service, id, deregistered: true })
    else process.stdout.write(`deregistered ${service}/${id}\n`)
    return EXIT_OK
  },
}

/** `rollcall drain <service> <id>`: status `draining`. */
export const drainCommand: Command = {
  name: 'drain',
  help: `Usage: rollcall drain <service> <id> [options]

Sets the instance's status to draining: it stays registered and keeps its lease, but is
no longer routable, so clients stop sending it new requests. Exits 1 if it is not
registered. To undo: PATCH its status back to up.

${CONNECTION_HELP}`,
  async run(argv) {
    const p = parse(argv, {})
    if (p.help) return help(this)
    const [service, id] = instancePath(p)
    const res = await restFor(p).request<Instance>('PATCH', `/v1/services/${service}/instances/${id}`, { status: 'draining' })
    if (res.status === 404) throw new CliError(`instance ${service}/${id} is not registered`)
    if (p.json) printJson(res.body)
    else process.stdout.write(`${service}/${id} is draining: registered, taking no new traffic (health ${res.body.health})\n`)
    return EXIT_OK
  },
}

function instancePath(p: Parsed): [string, string] {
  const [service, id] = positionals(p, ['service', 'id']) as [string, string]
  checkName(service, 'service')
  checkName(id, 'id')
  return [service, id]
}

/** The registration body from the flags, checked here so a bad one is a usage error naming the flag. */
function registerBody(p: Parsed): RegisterBody {
  const v = p.values
  if (v.host === undefined) throw new UsageError('missing --host')
  if (v.port === undefined) throw new UsageError('missing --port')
  const input = {
    host: v.host,
    port: intFlag(v.port, 'port', 1, 65535),
    ...(v.ttl !== undefined && { ttlSeconds: intFlag(v.ttl, 'ttl', 1, 3600) }),
    ...(v.scheme !== undefined && { scheme: v.scheme }),
    ...(v.zone !== undefined && { zone: v.zone }),
    ...(v.version !== undefined && { version: v.version }),
    ...(v.weight !== undefined && { weight: intFlag(v.weight, 'weight', 0, 1000) }),
    ...(v.tag !== undefined && { tags: v.tag }),
    ...(v.meta !== undefined && { metadata: pairsFlag(v.meta, 'meta') }),
  }
  const checked = RegisterBody.safeParse(input)
  if (!checked.success) {
    const issue = checked.error.issues[0]
    const field = String(issue?.path[0] ?? 'body')
    const flag = { ttlSeconds: 'ttl', tags: 'tag', metadata: 'meta' }[field] ?? field
    throw new UsageError(`--${flag}: ${issue?.message ?? 'invalid'}`)
  }
  return checked.data
}

/** Registers, then waits for a signal to deregister. Resolves with the exit code. */
async function hold(p: Parsed, service: string, id: string | undefined, body: RegisterBody): Promise<number> {
  const client = new RegistryClient({ url: p.url, ...(p.token !== undefined && { token: p.token }) })
  let first = true
  // Registration timers are unref'd (an SDK must not keep its host alive): this handle
  // keeps the command running until a signal.
  const alive = setInterval(() => undefined, 1 << 30)
  let signalled: (signal: NodeJS.Signals) => void = () => undefined
  const signal = new Promise<NodeJS.Signals>((resolve) => (signalled = resolve))
  const onSignal = (s: NodeJS.Signals) => signalled(s)
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  const stop = () => {
    clearInterval(alive)
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
  try {
    const registration = await Promise.race([
      client.register(
        { service, ...(id !== undefined && { id }), ...body },
        {
          registered: (instance) => {
            if (first) {
              first = false
              if (p.json) printJson(instance)
              else {
                process.stdout.write(
                  `registered ${service}/${instance.id} at ${address(instance)} (ttl ${instance.ttlSeconds}s); ` +
                    'heartbeating until Ctrl-C\n',
                )
              }
            } else process.stderr.write(`rollcall: the server had forgotten ${service}/${instance.id}; registered it again\n`)
          },
          error: (err) => process.stderr.write(`rollcall: ${describeError(err)}; retrying\n`),
        },
      ),
      signal,
    ])
    if (typeof registration === 'string') {
      // Stopped before the first registration went through.
      await client.close()
      process.stderr.write(`rollcall: stopped by ${registration} before ${service} was registered\n`)
      return EXIT_ERROR
    }
    await signal
    try {
      await registration.deregister()
    } catch (err) {
      process.stderr.write(`rollcall: could not deregister ${service}/${registration.id}: ${describeError(err)}\n`)
      await client.close()
      return EXIT_ERROR
    }
    await client.close()
    if (p.json) printJson({ service, id: registration.id, deregistered: true })
    else process.stdout.write(`deregistered ${service}/${registration.id}\n`)
    return EXIT_OK
  } finally {
    stop()
  }
}
