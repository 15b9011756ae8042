/**
 * The built `rollcall` CLI (dist/server/cli.js, as the bin runs it) as a child process
 * against a real server: tables, --json, exit codes (0 ok, 1 error, 2 usage), --help on
 * every command, register-until-SIGINT, watch printing changes, and serve.
 * Needs `npm run build` first (npm test does it).
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import t from 'tap'
import type { Instance, InstancesResponse, ServicesResponse } from '../client-sdk/protocol.js'
import { ManualClock } from '../server/registry/clock.js'
import { instanceBody, startTestServer, tempDir } from './helpers/server.js'
import type { TestServer } from './helpers/server.js'

const CLI = resolve(import.meta.dirname, '../dist/server/cli.js')

// Some 60 node processes start here; on a busy 2-core machine that alone can pass the
// default per-file limit. A safety net, not a timing assertion.
t.setTimeout(600_000)

/**
 * The environment of every child: no ROLLCALL_ settings of the caller's, no colour, and
 * none of tap's process hooks (NODE_OPTIONS, coverage), so the CLI runs as a user runs it.
 */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' }
  for (const k of Object.keys(env)) {
    if (k.startsWith('ROLLCALL_') || k.startsWith('_TAPJS_') || k === 'NODE_OPTIONS' || k === 'NODE_V8_COVERAGE') delete env[k]
  }
  return { ...env, ...extra }
}

interface Result {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs the CLI to its end. */
function run(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.once('error', reject)
    child.once('close', (code) => resolvePromise({ code, stdout, stderr }))
  })
}

/** A CLI left running: its output lines as they come, `line(re)` to wait for one. */
interface Running {
  child: ChildProcess
  lines: string[]
  stderr: () => string
  /** Resolves with the first line (old or new) matching `re`; rejects if the process ends first. */
  line(re: RegExp): Promise<string>
  exited: Promise<number | null>
}

function start(t: { teardown(fn: () => unknown): void }, args: string[], env: Record<string, string> = {}): Running {
  const child = spawn(process.execPath, [CLI, ...args], { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()))
  const waiters: Array<() => void> = []
  let ended = false
  const exited = new Promise<number | null>((res) =>
    child.once('close', (code) => {
      ended = true
      for (const w of waiters.splice(0)) w()
      res(code)
    }),
  )
  createInterface({ input: child.stdout! }).on('line', (l) => {
    lines.push(l)
    for (const w of waiters.splice(0)) w()
  })
  t.teardown(() => {
    if (!ended) child.kill('SIGKILL')
  })
  return {
    child,
    lines,
    stderr: () => stderr,
    exited,
    async line(re) {
      for (;;) {
        const found = lines.find((l) => re.test(l))
        if (found !== undefined) return found
        if (ended) throw new Error(`the CLI ended without printing ${re}; stdout: ${lines.join('\n')}; stderr: ${stderr}`)
        await new Promise<void>((r) => waiters.push(r))
      }
    },
  }
}

/** A port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as AddressInfo).port
  await new Promise<void>((r) => server.close(() => r()))
  return port
}

async function seed(s: TestServer): Promise<void> {
  const put = async (service: string, id: string, body: Record<string, unknown>) => {
    const res = await s.request('PUT', `/v1/services/${service}/instances/${id}`, instanceBody(body))
    if (res.status !== 201) throw new Error(`seed ${service}/${id}: ${res.status}`)
  }
  await put('orders', 'o-1', { host: '10.0.0.7', zone: 'eu-1a', version: '1.4.2', tags: ['canary'] })
  await put('orders', 'o-2', { host: '10.0.0.8', zone: 'eu-1b', version: '1.4.1', status: 'draining' })
  await put('billing', 'b-1', { host: '10.0.1.1', port: 9000, zone: 'eu-1a', metadata: { team: 'payments' } })
}

t.test('--help on every command, usage errors exit 2', async (t) => {
  const names = ['serve', 'services', 'instances', 'register', 'deregister', 'drain', 'watch', 'token']
  const helps = await Promise.all(names.map((name) => run([name, '--help'])))
  for (const [i, name] of names.entries()) {
    const r = helps[i] as Result
    t.equal(r.code, 0, `${name} --help exits 0`)
    t.match(r.stdout, new RegExp(`^Usage: rollcall ${name}`), `${name} --help prints its usage`)
    t.equal(r.stderr, '')
  }
  const top = await run(['--help'])
  t.equal(top.code, 0)
  for (const name of names) {
    t.match(top.stdout, new RegExp(`^  ${name} +\\S`, 'm'), `rollcall --help lists ${name}`)
  }
  t.match((await run(['help', 'drain'])).stdout, /^Usage: rollcall drain/)

  const token = await run(['token'])
  t.equal(token.code, 0, 'token alone prints its help')
  t.match(token.stdout, /^Usage: rollcall token/)

  const none = await run([])
  t.equal(none.code, 2, 'no command: usage')
  t.match(none.stderr, /^Usage: rollcall <command>/)
  const unknown = await run(['frobnicate'])
  t.equal(unknown.code, 2)
  t.match(unknown.stderr, /unknown command "frobnicate"/)

  const cases: Array<[string[], RegExp]> = [
    [['instances'], /missing <service>/],
    [['instances', 'orders', 'extra'], /unexpected argument: extra/],
    [['instances', 'orders', '--bogus'], /Unknown option '--bogus'/],
    [['instances', 'bad name!'], /<service>: must match/],
    [['instances', 'orders', '--meta', 'novalue'], /--meta: expected KEY=VALUE/],
    [['services', '--url', 'ftp://x'], /--url: must be http/],
    [['services', '--url', 'not a url'], /--url: not a URL/],
    [['deregister', 'orders'], /missing <id>/],
    [['drain'], /missing <service>/],
    [['register', 'orders', '--port', '80'], /missing --host/],
    [['register', 'orders', '--host', 'h'], /missing --port/],
    [['register', 'orders', '--host', 'h', '--port', '70000'], /--port: must be from 1 to 65535/],
    [['register', 'orders', '--host', 'h', '--port', '80', '--ttl', 'x'], /--ttl: must be a whole number/],
    [['register', 'orders', '--host', 'h', '--port', '80', '--scheme', 'gopher'], /--scheme: /],
    [['watch', '-x'], /Unknown option '-x'/],
    [['token', 'mint'], /unknown token command "mint"/],
    [['token', 'create'], /missing --scope/],
    [['token', 'revoke'], /missing <id>/],
    [['serve', '--port', 'nope'], /invalid --port/],
  ]
  const results = await Promise.all(cases.map(([args]) => run(args)))
  for (const [i, [args, message]] of cases.entries()) {
    const r = results[i] as Result
    t.equal(r.code, 2, `${args.join(' ')}: exit 2`)
    t.match(r.stderr, message, `${args.join(' ')}: says why`)
    t.equal(r.stdout, '', `${args.join(' ')}: nothing on stdout`)
  }
})

t.test('services and instances: tables for people, --json for scripts, filters', async (t) => {
  const s = await startTestServer(t, { checks: false })
  const empty = await run(['services', '--url', s.url])
  t.equal(empty.code, 0)
  t.match(empty.stdout, /^no services registered \(revision 0\)$/m)
  await seed(s)

  const services = await run(['services', '--url', s.url])
  t.equal(services.code, 0)
  const lines = services.stdout.split('\n')
  t.match(lines[0], /^SERVICE +INSTANCES +ROUTABLE +ZONES +REVISION$/)
  t.match(lines[1], /^billing +1 +1 +eu-1a +3$/)
  t.match(lines[2], /^orders +2 +1 +eu-1a,eu-1b +2$/)
  t.match(services.stdout, /2 services, 3 instances \(2 routable\) at revision 3/)

  const json = await run(['services', '--json'], { ROLLCALL_URL: s.url })
  t.equal(json.code, 0, 'ROLLCALL_URL names the server')
  const api = (await (await s.request('GET', '/v1/services')).json()) as ServicesResponse
  t.same(JSON.parse(json.stdout), api, '--json is the API answer')

  const table = await run(['instances', 'orders', '--url', s.url])
  t.equal(table.code, 0)
  const rows = table.stdout.trimEnd().split('\n')
  t.match(rows[0], /^ID +ADDRESS +STATUS +HEALTH +ZONE +VERSION +WEIGHT +TAGS +HEARTBEAT +CHECK$/)
  t.match(rows[1], /^o-1 +10\.0\.0\.7:8080 +up +passing +eu-1a +1\.4\.2 +100 +canary +\d+s ago +-$/)
  t.match(rows[2], /^o-2 +10\.0\.0\.8:8080 +draining +passing +eu-1b +1\.4\.1 +100 +- +\d+s ago +-$/)
  t.equal(rows.length, 3)

  const healthy = JSON.parse((await run(['instances', 'orders', '--healthy', '--json', '--url', s.url])).stdout) as InstancesResponse
  t.same(healthy.instances.map((i) => i.id), ['o-1'], '--healthy: routable only')
  const zone = JSON.parse((await run(['instances', 'orders', '--zone', 'eu-1b', '--json', '--url', s.url])).stdout) as InstancesResponse
  t.same(zone.instances.map((i) => i.id), ['o-2'], '--zone')
  const tag = JSON.parse((await run(['instances', 'orders', '--tag', 'canary', '--json', '--url', s.url])).stdout) as InstancesResponse
  t.same(tag.instances.map((i) => i.id), ['o-1'], '--tag')
  const meta = JSON.parse((await run(['instances', 'billing', '--meta', 'team=payments', '--json', '--url', s.url])).stdout) as InstancesResponse
  t.same(meta.instances.map((i) => i.id), ['b-1'], '--meta')
  const none = await run(['instances', 'orders', '--tag', 'canary', '--tag', 'nope', '--url', s.url])
  t.equal(none.code, 0)
  t.match(none.stdout, /^no instances of orders match/)
  const unknown = await run(['instances', 'ghosts', '--url', s.url])
  t.equal(unknown.code, 0, 'an unknown service is an empty list, as in the API')
  t.match(unknown.stdout, /^no instances of ghosts \(revision 0\)/)
})

t.test('--url wins over ROLLCALL_URL; an unreachable server exits 1', async (t) => {
  const s = await startTestServer(t, { checks: false })
  await seed(s)
  const dead = `http://127.0.0.1:${await closedPort()}`
  const wins = await run(['services', '--url', s.url], { ROLLCALL_URL: dead })
  t.equal(wins.code, 0)
  t.match(wins.stdout, /^SERVICE/)
  const down = await run(['services'], { ROLLCALL_URL: dead })
  t.equal(down.code, 1)
  t.match(down.stderr, /^rollcall services: registry http:\/\/127\.0\.0\.1:\d+ is unavailable: .*ECONNREFUSED/)
  t.equal(down.stdout, '')
  const watch = await run(['watch', '--url', dead])
  t.equal(watch.code, 1, 'watch exits 1 when the server cannot be reached at start')
  t.match(watch.stderr, /cannot watch ws:\/\/127\.0\.0\.1:\d+\/v1\/watch: .*ECONNREFUSED/)
})

t.test('drain and deregister change the server; unknown instances exit 1', async (t) => {
  const s = await startTestServer(t, { checks: false })
  await seed(s)
  const drain = await run(['drain', 'orders', 'o-1', '--url', s.url])
  t.equal(drain.code, 0)
  t.match(drain.stdout, /^orders\/o-1 is draining/)
  t.equal(s.registry.get('orders', 'o-1')?.status, 'draining')

  const json = await run(['drain', 'billing', 'b-1', '--json', '--url', s.url])
  t.equal(json.code, 0)
  const inst = JSON.parse(json.stdout) as Instance
  t.equal(inst.status, 'draining')
  t.equal(inst.id, 'b-1')

  const missing = await run(['drain', 'orders', 'o-9', '--url', s.url])
  t.equal(missing.code, 1)
  t.match(missing.stderr, /^rollcall drain: instance orders\/o-9 is not registered$/m)

  const dereg = await run(['deregister', 'orders', 'o-2', '--url', s.url])
  t.equal(dereg.code, 0)
  t.equal(dereg.stdout, 'deregistered orders/o-2\n')
  t.equal(s.registry.get('orders', 'o-2'), undefined)
  const again = await run(['deregister', 'orders', 'o-2', '--json', '--url', s.url])
  t.equal(again.code, 1)
  t.match(again.stderr, /orders\/o-2 is not registered/)
  t.equal(again.stdout, '')
})

t.test('register heartbeats until SIGINT, then deregisters and exits 0', async (t) => {
  const clock = new ManualClock(Date.now())
  const s = await startTestServer(t, { checks: false }, { clock, sweepIntervalMs: 0 })
  const cli = start(t, [
    'register', 'orders', '--host', '10.0.0.9', '--port', '9090', '--id', 'cli-1', '--ttl', '1',
    '--zone', 'eu-1a', '--version', '2.0.0', '--weight', '50', '--tag', 'blue', '--tag', 'cli', '--meta', 'owner=ops',
    '--url', s.url,
  ])
  const line = await cli.line(/^registered /)
  t.equal(line, 'registered orders/cli-1 at 10.0.0.9:9090 (ttl 1s); heartbeating until Ctrl-C')
  const r = s.registry.get('orders', 'cli-1')
  t.ok(r, 'registered on the server')
  t.same(
    { zone: r?.zone, version: r?.version, weight: r?.weight, tags: r?.tags, metadata: r?.metadata, ttl: r?.ttlSeconds },
    { zone: 'eu-1a', version: '2.0.0', weight: 50, tags: ['blue', 'cli'], metadata: { owner: 'ops' }, ttl: 1 },
  )

  // Let the lease run out on the server's clock; the CLI's next heartbeat revives it.
  const revived = new Promise<void>((res) => {
    const sub = s.registry.onChange((c) => {
      if (c.instance.id === 'cli-1' && c.instance.health === 'passing') {
        sub.dispose()
        res()
      }
    })
  })
  clock.advance(5_000)
  s.registry.sweep()
  t.equal(s.registry.get('orders', 'cli-1')?.health, 'critical', 'lapsed on the server clock')
  await revived
  t.pass('a heartbeat from the CLI revived it: it keeps heartbeating')

  cli.child.kill('SIGINT')
  t.equal(await cli.exited, 0, 'exit 0 after Ctrl-C')
  t.ok(cli.lines.includes('deregistered orders/cli-1'))
  t.equal(s.registry.get('orders', 'cli-1'), undefined, 'deregistered on the server')
  t.equal(cli.stderr(), '')
})

t.test('register --json prints the instance; a body the schema refuses is a usage error', async (t) => {
  const s = await startTestServer(t, { checks: false })
  const cli = start(t, ['register', 'billing', '--host', '10.0.1.2', '--port', '80', '--json', '--url', s.url])
  // The instance comes as indented JSON: wait for its closing brace.
  await cli.line(/^}$/)
  const inst = JSON.parse(cli.lines.join('\n')) as Instance
  t.equal(inst.service, 'billing')
  t.ok(s.registry.get('billing', inst.id), 'registered under the id it printed')
  cli.child.kill('SIGTERM')
  t.equal(await cli.exited, 0)
  t.equal(s.registry.get('billing', inst.id), undefined)

  // 33 tags: each is fine, but the schema allows 32.
  const tags = Array.from({ length: 33 }, (_, i) => ['--tag', `t${i}`]).flat()
  const refused = await run(['register', 'billing', '--host', 'h', '--port', '80', ...tags, '--url', s.url])
  t.equal(refused.code, 2, 'caught before sending, as a usage error naming the flag')
  t.match(refused.stderr, /--tag: /)
})

t.test('watch prints the state, then each change as it happens; --json is NDJSON', async (t) => {
  const s = await startTestServer(t, { checks: false })
  await seed(s)
  const watch = start(t, ['watch', 'orders', '--url', s.url])
  const json = start(t, ['watch', '--json', '--url', s.url])
  t.match(await watch.line(/snapshot/), /^\d\d:\d\d:\d\d {2}snapshot {2}rev 3 {2}2 instances:$/)
  await watch.line(/^ {2}orders\/o-2 /)
  t.ok(watch.lines.includes('  orders/o-1  up passing 10.0.0.7:8080 zone eu-1a version 1.4.2 tags canary'))
  await json.line(/"type":"snapshot"/)

  t.equal((await s.request('PUT', '/v1/services/orders/instances/o-3', instanceBody({ host: '10.0.0.9', weight: 10 }))).status, 201)
  t.match(await watch.line(/o-3/), /^\d\d:\d\d:\d\d {2}rev 4 {2}orders\/o-3 {2}registered {2}up passing 10\.0\.0\.9:8080 weight 10$/)
  t.equal((await s.request('PATCH', '/v1/services/orders/instances/o-3', { status: 'draining', weight: 0 })).status, 200)
  t.match(await watch.line(/rev 5/), /orders\/o-3 {2}status up -> draining, weight 10 -> 0$/)
  t.equal((await s.request('PUT', '/v1/services/billing/instances/b-2', instanceBody())).status, 201)
  t.equal((await s.request('DELETE', '/v1/services/orders/instances/o-3')).status, 204)
  t.match(await watch.line(/rev 7/), /orders\/o-3 {2}removed$/)
  t.notOk(watch.lines.some((l) => l.includes('b-2')), 'billing was not subscribed')

  await json.line(/"revision":7/)
  const messages = json.lines.map((l) => JSON.parse(l) as { type: string; revision: number; service?: string })
  t.same(
    messages.map((m) => [m.type, m.revision]),
    [['snapshot', 3], ['change', 4], ['change', 5], ['change', 6], ['change', 7]],
    'every message, one JSON per line, in order',
  )

  watch.child.kill('SIGINT')
  json.child.kill('SIGINT')
  t.equal(await watch.exited, 0)
  t.equal(await json.exited, 0)
})

t.test('watch reconnects after the server drops it and resumes without a gap', async (t) => {
  const s = await startTestServer(t, { checks: false })
  await seed(s)
  const watch = start(t, ['watch', '--url', s.url])
  await watch.line(/snapshot/)
  // Every session closed as a slow consumer would be: the CLI reconnects with since=3.
  s.app.watchHub.closeWhere(() => true, 4008, 'test')
  t.equal((await s.request('PUT', '/v1/services/orders/instances/o-4', instanceBody())).status, 201)
  t.match(await watch.line(/o-4/), /rev 4 {2}orders\/o-4 {2}registered/)
  t.equal(watch.lines.filter((l) => /snapshot/.test(l)).length, 1, 'resumed with since: no second snapshot')
  t.match(watch.stderr(), /connection closed \(4008 test\); reconnecting/)
  watch.child.kill('SIGINT')
  t.equal(await watch.exited, 0)
})

t.test('serve runs the server until SIGTERM and exits 0', async (t) => {
  const dir = tempDir(t)
  const serve = start(t, ['serve', '--port', '0', '--db', join(dir, 'r.db'), '--checks', 'off'])
  const listening = JSON.parse(await serve.line(/rollcall listening/)) as { address: string }
  const res = await fetch(`${listening.address}/healthz`)
  t.equal(res.status, 200)
  const services = await run(['services', '--url', listening.address])
  t.equal(services.code, 0)
  serve.child.kill('SIGTERM')
  t.equal(await serve.exited, 0)
})

t.test('token create, list and revoke against a server with auth on', async (t) => {
  const admin = 'cli-test-admin-token-0123456789'
  const s = await startTestServer(t, { checks: false, auth: true, adminToken: admin })
  const seeded = await s.request('PUT', '/v1/services/orders/instances/o-1', instanceBody(), { authorization: `Bearer ${admin}` })
  t.equal(seeded.status, 201)

  const anonymous = await run(['services', '--url', s.url])
  t.equal(anonymous.code, 1, 'no token: refused')
  t.match(anonymous.stderr, /UNAUTHENTICATED, HTTP 401/)

  const created = await run(['token', 'create', '--scope', 'read', '--description', 'ci reader', '--ttl', '3600', '--json', '--url', s.url, '--token', admin])
  t.equal(created.code, 0, created.stderr)
  const token = JSON.parse(created.stdout) as { id: string; token: string; scopes: string[]; description: string; expiresAt?: string }
  t.same(token.scopes, ['read'])
  t.equal(token.description, 'ci reader')
  t.ok(token.expiresAt, '--ttl sets an expiry')

  const reader = await run(['services', '--json'], { ROLLCALL_URL: s.url, ROLLCALL_TOKEN: token.token })
  t.equal(reader.code, 0, 'ROLLCALL_TOKEN is sent as a bearer')
  t.equal((JSON.parse(reader.stdout) as ServicesResponse).services[0]?.name, 'orders')
  const forbidden = await run(['drain', 'orders', 'o-1', '--url', s.url, '--token', token.token])
  t.equal(forbidden.code, 1, 'a read token cannot drain')
  t.match(forbidden.stderr, /FORBIDDEN, HTTP 403/)

  const human = await run(['token', 'create', '--scope', 'register:orders', '--url', s.url], { ROLLCALL_TOKEN: admin })
  t.equal(human.code, 0)
  t.match(human.stdout, /^created token \S+ \(scopes register:orders\)\.\nThis is the only time it is shown; store it now:\n\n {2}\S+\n$/)

  const list = await run(['token', 'list', '--url', s.url, '--token', admin])
  t.equal(list.code, 0)
  t.match(list.stdout, /^ID +SCOPES +DESCRIPTION +CREATED +EXPIRES +REVOKED$/m)
  t.match(list.stdout, new RegExp(`^${token.id} +read +ci reader +\\d+s ago +in \\d+m +-$`, 'm'))
  t.notMatch(list.stdout, token.token, 'never a secret')

  // A watch opened with the token is closed by its revocation: the CLI exits 1 and says why.
  const watch = start(t, ['watch', '--url', s.url, '--token', token.token])
  await watch.line(/snapshot/)

  const revoked = await run(['token', 'revoke', token.id, '--url', s.url, '--token', admin])
  t.equal(revoked.code, 0)
  t.equal(revoked.stdout, `revoked token ${token.id}\n`)
  t.equal(await watch.exited, 1, 'the watch ends when its token is revoked')
  t.match(watch.stderr(), /the server closed the watch: token revoked/)
  const after = await run(['services', '--url', s.url, '--token', token.token])
  t.equal(after.code, 1, 'a revoked token is refused')
  const listed = JSON.parse((await run(['token', 'list', '--json', '--url', s.url, '--token', admin])).stdout) as {
    tokens: Array<{ id: string; revokedAt?: string }>
  }
  t.ok(listed.tokens.find((x) => x.id === token.id)?.revokedAt, 'listed as revoked')

  const unknown = await run(['token', 'revoke', 'tok-nope', '--url', s.url, '--token', admin])
  t.equal(unknown.code, 1)
  t.match(unknown.stderr, /does not exist \(NOT_FOUND, HTTP 404\)/)
  const badScope = await run(['token', 'create', '--scope', 'root', '--url', s.url, '--token', admin])
  t.equal(badScope.code, 1, 'the server refuses a scope it does not know')
  t.match(badScope.stderr, /VALIDATION_FAILED/)
  const notAdmin = await run(['token', 'list', '--url', s.url, '--token', token.token])
  t.equal(notAdmin.code, 1)
})
