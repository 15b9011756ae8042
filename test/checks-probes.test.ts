import http from 'node:http'
import net from 'node:net'
import t from 'tap'
import { CheckSpec } from '../client-sdk/protocol.js'
import { probeHttp } from '../server/health/http-probe.js'
import { probe } from '../server/health/probe.js'
import { probeTcp } from '../server/health/tcp-probe.js'
import { SELF_SIGNED, deadPort, startHttpTarget, startTcpTarget } from './helpers/check-targets.js'

// The HTTP and TCP probes on their own, against real listeners on 127.0.0.1.

const never = new AbortController().signal
const http200 = (port: number, path = '/health') => ({ secure: false, host: '127.0.0.1', port, path })

t.test('an HTTP probe passes on 2xx and fails on 5xx, with the status code', async (t) => {
  const target = await startHttpTarget(t, 200)
  const ok = await probeHttp(http200(target.port), 2000, never)
  t.equal(ok.ok, true)
  t.equal(ok.statusCode, 200)
  t.equal(ok.error, undefined)
  t.type(ok.durationMs, 'number')
  t.ok(ok.durationMs >= 0)

  target.mode = 204
  t.match(await probeHttp(http200(target.port), 2000, never), { ok: true, statusCode: 204 })

  target.mode = 500
  t.same(
    { ...(await probeHttp(http200(target.port), 2000, never)), durationMs: 0 },
    { ok: false, statusCode: 500, error: 'status 500', durationMs: 0 },
  )
  target.mode = 404
  t.match(await probeHttp(http200(target.port), 2000, never), { ok: false, statusCode: 404, error: 'status 404' })
  t.same(target.received.map((r) => r.path), ['/health', '/health', '/health', '/health'])
})

t.test('a 3xx passes and the redirect is not followed', async (t) => {
  const target = await startHttpTarget(t, 'hold')
  const pending = probeHttp(http200(target.port, '/old'), 2000, never)
  const req = await target.request(1)
  req.answer(302, { location: `http://127.0.0.1:${target.port}/elsewhere` })
  t.match(await pending, { ok: true, statusCode: 302 })
  await target.idle()
  t.equal(target.count('/elsewhere'), 0, 'the location was never requested')
  t.equal(target.count(), 1)
})

t.test('a target that accepts but never answers fails with timeout, and its connection is closed', async (t) => {
  const target = await startHttpTarget(t, 'hold')
  const outcome = await probeHttp(http200(target.port), 300, never)
  t.same({ ok: outcome.ok, error: outcome.error, statusCode: outcome.statusCode }, { ok: false, error: 'timeout', statusCode: undefined })
  const req = await target.request(1)
  await req.whenClosed
  t.equal(req.parked, false, 'the hung request is no longer waiting')
  await target.idle()
  t.equal(await target.connections(), 0)
})

t.test('nothing listening: ECONNREFUSED for HTTP and TCP', async (t) => {
  const port = await deadPort()
  t.match(await probeHttp(http200(port), 2000, never), { ok: false, error: 'ECONNREFUSED' })
  t.match(await probeTcp({ host: '127.0.0.1', port }, 2000, never), { ok: false, error: 'ECONNREFUSED' })
})

t.test('an abort ends a probe in flight and closes its socket', async (t) => {
  const target = await startHttpTarget(t, 'hold')
  const abort = new AbortController()
  const pending = probeHttp(http200(target.port), 60_000, abort.signal)
  const req = await target.request(1)
  abort.abort()
  t.match(await pending, { ok: false, error: 'aborted' })
  await req.whenClosed
  await target.idle()

  const already = new AbortController()
  already.abort()
  t.match(await probeTcp({ host: '127.0.0.1', port: target.port }, 60_000, already.signal), { ok: false, error: 'aborted' })
  t.match(await probeHttp(http200(target.port), 60_000, already.signal), { ok: false, error: 'aborted' })
  t.equal(target.count(), 1, 'an already aborted probe sends nothing')
})

t.test('the body is discarded, however large or endless, and the socket is closed', async (t) => {
  let streams = 0
  let closedStreams = 0
  const server = http.createServer((req, res) => {
    if (req.url === '/big') return res.end('x'.repeat(4 * 1024 * 1024))
    // An endless body: the probe must not wait for its end.
    streams++
    res.writeHead(200)
    const timer = setInterval(() => res.write('y'.repeat(16 * 1024)), 1)
    res.on('close', () => {
      clearInterval(timer)
      closedStreams++
    })
  })
  const open = new Set<net.Socket>()
  const allClosed = new Promise<void>((resolve) =>
    server.on('connection', (socket: net.Socket) => {
      open.add(socket)
      socket.on('close', () => {
        open.delete(socket)
        if (open.size === 0 && streams === 1) resolve()
      })
    }),
  )
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const port = (server.address() as net.AddressInfo).port
  t.match(await probeHttp(http200(port, '/big'), 5000, never), { ok: true, statusCode: 200 })
  t.match(await probeHttp(http200(port, '/stream'), 5000, never), { ok: true, statusCode: 200 })
  t.equal(streams, 1)
  await allClosed
  t.equal(await new Promise((resolve) => server.getConnections((_e, n) => resolve(n))), 0)
  t.equal(closedStreams, 1, 'the endless response was cut off')
})

t.test('HTTPS: a self-signed certificate is accepted (certificates are not verified)', async (t) => {
  const target = await startHttpTarget(t, 200, SELF_SIGNED)
  t.match(await probeHttp({ secure: true, host: '127.0.0.1', port: target.port, path: '/h' }, 2000, never), {
    ok: true,
    statusCode: 200,
  })
  // The instance's scheme picks HTTPS for an HTTP check; plain HTTP to a TLS port fails.
  const check = CheckSpec.parse({ type: 'http', path: '/h' })
  t.match(await probe({ host: '127.0.0.1', port: target.port, scheme: 'https' }, check, never), { ok: true })
  const plain = await probe({ host: '127.0.0.1', port: target.port, scheme: 'http' }, check, never)
  t.equal(plain.ok, false)
  t.equal(target.count('/h'), 2)
})

t.test('a TCP probe passes on connect and closes at once', async (t) => {
  const target = await startTcpTarget(t)
  const check = CheckSpec.parse({ type: 'tcp' })
  const outcome = await probe({ host: '127.0.0.1', port: target.port, scheme: 'tcp' }, check, never)
  t.equal(outcome.ok, true)
  t.equal(outcome.statusCode, undefined)
  t.equal(target.accepted, 1)
  await target.stop()
  t.match(await probe({ host: '127.0.0.1', port: target.port, scheme: 'tcp' }, check, never), {
    ok: false,
    error: 'ECONNREFUSED',
  })
  await target.reopen()
  t.match(await probe({ host: '127.0.0.1', port: target.port, scheme: 'tcp' }, check, never), { ok: true })
  t.equal(target.accepted, 2)
})
