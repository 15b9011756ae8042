import { request as httpRequest } from 'node:http'
import { join, resolve } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import type { InstancesResponse } from '../client-sdk/protocol.js'
import { exitedAndDrained, logEntries, runToExit } from './helpers/process.js'
import type { ServerProcess } from './helpers/server.js'
import { instanceBody, spawnServer, tempDir } from './helpers/server.js'

/** The built server as a process (`npm run build` first): configuration, signals, logs. */

async function start(t: Test, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<ServerProcess & { db: string }> {
  const db = join(tempDir(t), 'rollcall.db')
  const sp = await spawnServer(['--db', db, '--checks', 'off', ...args], env)
  t.teardown(() => {
    if (sp.child.exitCode === null && sp.child.signalCode === null) sp.child.kill('SIGKILL')
  })
  return { ...sp, db }
}

t.test('a bad setting exits non-zero with one line naming it', async (t) => {
  const db = join(tempDir(t), 'never.db')
  const cases: Array<[string, string[], NodeJS.ProcessEnv, RegExp]> = [
    ['--port 99999', ['--port', '99999'], {}, /--port/],
    ['ROLLCALL_PORT=abc', [], { ROLLCALL_PORT: 'abc' }, /ROLLCALL_PORT/],
    ['--log-level loud', ['--log-level', 'loud'], {}, /--log-level/],
    ['ROLLCALL_DURABILITY=sometimes', [], { ROLLCALL_DURABILITY: 'sometimes' }, /durability/],
    ['an unknown flag', ['--frobnicate', 'yes'], {}, /--frobnicate/],
    ['a flag without its value', ['--port'], {}, /--port/],
    ['a positional argument', ['serve'], {}, /serve/],
  ]
  // Each run is a whole Node start: run them side by side.
  const runs = await Promise.all(cases.map(([, args, env]) => runToExit(['--db', db, ...args], { ROLLCALL_PORT: '0', ...env })))
  cases.forEach(([what, , , names], i) => {
    const run = runs[i]!
    t.not(run.code, 0, `${what}: exits non-zero`)
    t.equal(run.signal, null, `${what}: by itself, not by a signal`)
    const lines = run.stderr.split('\n').filter((l) => l !== '')
    t.equal(lines.length, 1, `${what}: one line on stderr`)
    t.match(lines[0], names, `${what}: the line names the setting`)
    t.notMatch(run.stderr, /\n\s+at /, `${what}: no stack trace`)
    t.notMatch(run.stdout, /rollcall listening/, `${what}: never listened`)
  })
  // The flag wins over the environment: a good flag hides a bad variable.
  const sp = await start(t, ['--port', '0'], { ROLLCALL_PORT: 'abc' })
  t.match(sp.url, /^http:\/\/127\.0\.0\.1:\d+$/, 'flags win over ROLLCALL_ variables')
  sp.child.kill('SIGTERM')
  t.equal((await sp.exited).code, 0)
})

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`${signal}: exit 0`, async (t) => {
    const sp = await start(t)
    const res = await fetch(`${sp.url}/v1/services/orders/instances/o-1`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(instanceBody()),
    })
    t.equal(res.status, 201)
    sp.child.kill(signal)
    const { code } = await exitedAndDrained(sp)
    t.equal(code, 0)
    const msgs = logEntries(sp.lines).map((e) => e.msg)
    t.ok(msgs.includes('shutting down'), 'it says it is shutting down')
    t.ok(msgs.includes('stopped'), 'and that it stopped')
  })
}

/** Sends a GET and resolves `sent` once the request has left for the server. */
function startRequest(url: string, path: string): { sent: Promise<void>; answer: Promise<{ status: number; body: string }> } {
  const u = new URL(url)
  let onSent!: () => void
  const sent = new Promise<void>((r) => (onSent = r))
  const answer = new Promise<{ status: number; body: string }>((resolvePromise, reject) => {
    const req = httpRequest({ host: u.hostname, port: u.port, path, agent: false }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => (body += d.toString()))
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.on('finish', onSent)
    req.end()
  })
  return { sent, answer }
}

t.test('a blocking query in flight does not hold up shutdown', async (t) => {
  const sp = await start(t)
  const put = await fetch(`${sp.url}/v1/services/orders/instances/o-1`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(instanceBody()),
  })
  const revision = ((await put.json()) as { revision: number }).revision
  const blocking = startRequest(sp.url, `/v1/services/orders/instances?index=${revision}&wait=300s`)
  await blocking.sent
  // A round trip on another connection after the query went out: the query is parked by now.
  t.equal((await fetch(`${sp.url}/healthz`)).status, 200)

  sp.child.kill('SIGTERM')
  const [{ code }, answer] = await Promise.all([sp.exited, blocking.answer])
  t.equal(code, 0, 'exit 0: shutdown finished by itself, not by the 4.5 s force exit (which exits 1)')
  t.equal(answer.status, 200, 'the parked query is answered, with what it has')
  t.equal((JSON.parse(answer.body) as InstancesResponse).revision, revision)
})

t.test('the startup line has the bound address and the database path', async (t) => {
  const sp = await start(t)
  const startup = logEntries(sp.lines).find((e) => e.msg === 'rollcall listening')
  t.ok(startup, 'a startup line')
  t.match(startup?.address, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.not(startup?.address, 'http://127.0.0.1:0', 'port 0 resolved to the bound port')
  t.equal(startup?.address, sp.url)
  t.equal(startup?.db, resolve(sp.db), 'the absolute database path')
  t.equal(startup?.level, 30, 'at info')
  t.equal((await fetch(`${startup?.address as string}/healthz`)).status, 200, 'and it is really there')
  sp.child.kill('SIGTERM')
  await sp.exited
})

t.test('one info line per request, with no body and no authorization header', async (t) => {
  const sp = await start(t)
  const TOKEN = 'Bearer tok-3f9a8b7c6d5e-secret'
  const BODY_SECRET = 'hunter2-body-secret'
  const requests: Array<[string, string, unknown]> = [
    ['PUT', '/v1/services/orders/instances/o-1', instanceBody({ metadata: { password: BODY_SECRET } })],
    ['GET', '/v1/services/orders/instances?tag=x', undefined],
    ['PATCH', '/v1/services/orders/instances/o-1', { metadata: { password: BODY_SECRET } }],
    ['PUT', '/v1/services/orders/instances/o-1', { host: BODY_SECRET, port: 'x' }],
    ['GET', '/nope', undefined],
  ]
  for (const [method, path, body] of requests) {
    await fetch(sp.url + path, {
      method,
      headers: { authorization: TOKEN, cookie: 'session=abc-cookie-secret', ...(body !== undefined && { 'content-type': 'application/json' }) },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    })
  }
  sp.child.kill('SIGTERM')
  t.equal((await exitedAndDrained(sp)).code, 0)

  const all = sp.lines.join('\n')
  t.notMatch(all, 'tok-3f9a8b7c6d5e', 'the token is nowhere in the log')
  t.notMatch(all, BODY_SECRET, 'no body is in the log')
  t.notMatch(all, 'abc-cookie-secret', 'no cookie is in the log')
  t.notMatch(all.toLowerCase(), 'authorization', 'no authorization header')

  const entries = logEntries(sp.lines)
  const byRequest = new Map<unknown, Array<Record<string, unknown>>>()
  for (const e of entries) if (e.reqId !== undefined) byRequest.set(e.reqId, [...(byRequest.get(e.reqId) ?? []), e])
  const lines = entries.filter((e) => e.msg === 'request')
  t.equal(lines.length, requests.length, 'one request line per request')
  t.equal(byRequest.size, requests.length, 'one request id per request')
  for (const group of byRequest.values()) t.equal(group.length, 1, `request ${String(group[0]?.reqId)}: exactly one line`)
  t.same(
    lines.map((e) => [e.level, e.method, e.url, e.status]),
    [
      [30, 'PUT', '/v1/services/orders/instances/o-1', 201],
      [30, 'GET', '/v1/services/orders/instances?tag=x', 200],
      [30, 'PATCH', '/v1/services/orders/instances/o-1', 200],
      [30, 'PUT', '/v1/services/orders/instances/o-1', 400],
      [30, 'GET', '/nope', 404],
    ],
    'at info: method, url, status',
  )
  for (const e of lines) t.type(e.ms, 'number', 'and the time taken')
  for (const e of lines) {
    const keys = Object.keys(e).filter((k) => !['level', 'time', 'pid', 'hostname', 'reqId', 'msg', 'method', 'url', 'status', 'ms'].includes(k))
    t.same(keys, [], 'nothing else in the line')
  }
})
