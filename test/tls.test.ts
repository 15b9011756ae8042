import { execFile, execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { request } from 'node:https'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import WebSocket from 'ws'
import { ADMIN } from './helpers/auth.js'
import { startTestServer, tempDir } from './helpers/server.js'

/**
 * HTTPS with --tls-cert/--tls-key: a self-signed certificate made here with openssl, the
 * REST API, the watch over wss and the SDK (trusting that certificate), and a plain-HTTP
 * client refused.
 */

function selfSigned(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { stdio: 'ignore' })
  return { cert, key }
}

function get(url: string, ca: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; body: string; protocol: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, headers, agent: false }, (res) => {
      const protocol = (res.socket as { getProtocol?: () => string | null }).getProtocol?.() ?? ''
      let body = ''
      res.on('data', (d: Buffer) => (body += d.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, protocol }))
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('a server with a certificate answers over https and wss', async (t) => {
  const dir = tempDir(t)
  const { cert, key } = selfSigned(dir)
  const ca = readFileSync(cert)
  const s = await startTestServer(t, { tlsCert: cert, tlsKey: key, auth: true, adminToken: ADMIN, checks: false })
  t.match(s.url, /^https:\/\/127\.0\.0\.1:\d+$/, 'the URL says https')

  const health = await get(`${s.url}/healthz`, ca)
  t.equal(health.status, 200)
  t.match(health.protocol, /^TLSv1\.[23]$/, `negotiated ${health.protocol}`)
  const denied = await get(`${s.url}/v1/services`, ca)
  t.equal(denied.status, 401, 'auth applies over TLS too')
  const listed = await get(`${s.url}/v1/services`, ca, { authorization: `Bearer ${ADMIN}` })
  t.equal(listed.status, 200)

  await t.rejects(get(`${s.url}/healthz`, Buffer.from('')), 'a client that does not trust the certificate fails')
  await t.rejects(fetch(s.url.replace('https:', 'http:') + '/healthz'), 'plain HTTP gets no answer')

  const ws = new WebSocket(`${s.url.replace(/^https/, 'wss')}/v1/watch`, { ca, headers: { authorization: `Bearer ${ADMIN}` } })
  t.teardown(() => ws.terminate())
  const first = await new Promise<unknown>((resolve, reject) => {
    ws.once('open', () => ws.send(JSON.stringify({ type: 'subscribe', services: ['*'] })))
    ws.once('message', (d) => resolve(JSON.parse(d.toString())))
    ws.once('error', reject)
  })
  t.match(first, { type: 'snapshot' }, 'the watch works over wss')
})

t.test('the SDK over https, trusting the certificate as a user would (NODE_EXTRA_CA_CERTS)', async (t) => {
  const dir = tempDir(t)
  const { cert, key } = selfSigned(dir)
  const s = await startTestServer(t, { tlsCert: cert, tlsKey: key, auth: true, adminToken: ADMIN, checks: false })
  // The SDK uses fetch and ws with Node's trust store; a private CA is added to it at
  // process start, so the client runs in a child process of its own (the built SDK).
  const sdk = join(import.meta.dirname, '..', 'dist', 'client-sdk', 'index.js')
  const script = `
    const { RegistryClient } = await import(${JSON.stringify(sdk)})
    const c = new RegistryClient({ url: process.argv[1], token: process.argv[2] })
    const me = await c.register({ service: 'orders', host: '127.0.0.1', port: 9000 })
    const orders = c.service('orders')
    await orders.ready()
    process.stdout.write(JSON.stringify({ id: me.id, cached: orders.instances().length }))
    await c.close()`
  // Asynchronously: the server answering it runs in this process.
  const { stdout: out } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script, s.url, ADMIN], {
    env: { ...process.env, NODE_EXTRA_CA_CERTS: cert },
    encoding: 'utf8',
    timeout: 60_000,
  })
  const { id, cached } = JSON.parse(out) as { id: string; cached: number }
  t.ok(id, 'registered over https')
  t.equal(cached, 1, 'and watched over wss into its cache')
  t.equal(s.registry.get('orders', id), undefined, 'close() deregistered it over https')
})
