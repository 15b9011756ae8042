import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import BetterSqlite3 from 'better-sqlite3'
import t from 'tap'
import { Grants, globMatch } from '../server/auth/grants.js'
import { isLoopback } from '../server/auth/startup.js'
import { ConfigError, defaultConfig, loadConfig } from '../server/config.js'
import { startRollcall } from '../server/server.js'
import { ADMIN } from './helpers/auth.js'
import { runToExit } from './helpers/process.js'
import { startTestServer, tempDir } from './helpers/server.js'

/**
 * Safe defaults: what the security settings accept and refuse, the refusals at start (an
 * open registry on a public address, auth with nobody able to get in), and tokens at
 * rest (a digest, never the secret; revocation survives a restart).
 */

t.test('the settings: flags, variables, defaults, refusals', async (t) => {
  const d = defaultConfig()
  t.match(d, { auth: false, anonymousScopes: [], insecure: false, maxWatchPerToken: 100 }, 'defaults: auth off')
  t.equal(d.rateLimit, undefined, 'no explicit rate limit')
  t.equal(d.adminToken, undefined)
  const c = loadConfig(
    ['--auth', 'on', '--anonymous-scopes', 'read, register:team-a.*', '--insecure', '--rate-limit', '100', '--max-watch-per-token', '5'],
    { ROLLCALL_ADMIN_TOKEN: ADMIN, ROLLCALL_TLS_CERT: 'c.pem', ROLLCALL_TLS_KEY: 'k.pem' },
  )
  t.match(c, { auth: true, anonymousScopes: ['read', 'register:team-a.*'], insecure: true, rateLimit: 100, maxWatchPerToken: 5, adminToken: ADMIN, tlsCert: 'c.pem', tlsKey: 'k.pem' })
  t.equal(loadConfig([], { ROLLCALL_INSECURE: 'on' }).insecure, true, 'ROLLCALL_INSECURE=on')
  t.equal(loadConfig([], { ROLLCALL_AUTH: 'off' }).auth, false)
  for (const [argv, env, pattern] of [
    [['--auth', 'yes'], {}, /--auth/],
    [['--anonymous-scopes', 'admin'], {}, /--anonymous-scopes.*admin cannot be anonymous/],
    [['--anonymous-scopes', 'write'], {}, /--anonymous-scopes/],
    [['--anonymous-scopes', 'register:'], {}, /--anonymous-scopes/],
    [['--admin-token', 'short'], {}, /--admin-token.*16/],
    [[], { ROLLCALL_ADMIN_TOKEN: 'short' }, /ROLLCALL_ADMIN_TOKEN/],
    [['--rate-limit', '-1'], {}, /--rate-limit/],
    [['--max-watch-per-token', '0'], {}, /--max-watch-per-token/],
    [['--insecure=yes'], {}, /insecure/],
  ] as const) {
    t.throws(() => loadConfig([...argv], env), pattern, `${argv.join(' ')} ${JSON.stringify(env)} is refused`)
  }
})

t.test('scopes: patterns with * match whole names, without backtracking blow-ups', async (t) => {
  t.ok(globMatch('orders', 'orders'))
  t.notOk(globMatch('orders', 'orders2'))
  t.notOk(globMatch('orders', 'xorders'))
  t.ok(globMatch('team-a.*', 'team-a.x'))
  t.notOk(globMatch('team-a.*', 'team-a'))
  t.notOk(globMatch('team-a.*', 'team-aXx'), '. is a literal dot')
  t.ok(globMatch('*', 'anything'))
  t.ok(globMatch('*-v2', 'orders-v2'))
  t.ok(globMatch('a*b*c', 'a--b--c'))
  t.notOk(globMatch('a*b*c', 'a--c--b'))
  t.ok(globMatch('**', 'x'))
  // 60 stars against 128 characters that never match: a regex of .* would take ages.
  t.notOk(globMatch(`${'a*'.repeat(60)}b`, 'a'.repeat(128)), 'a pathological pattern answers at once')
  const g = Grants.of(['read', 'register:orders'])
  t.ok(g.read)
  t.notOk(g.admin)
  t.ok(g.canRegister('orders'))
  t.notOk(g.canRegister('payments'))
  t.ok(Grants.of(['admin']).canRegister('anything'), 'admin registers anything')
  t.ok(Grants.of(['admin']).read, 'admin reads')
  t.notOk(Grants.of(['register:*']).read, 'register does not read')
})

t.test('loopback or not', async (t) => {
  for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1']) t.ok(isLoopback(h), h)
  for (const h of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.1', 'example.com', '128.0.0.1']) t.notOk(isLoopback(h), h)
})

t.test('an open registry on a public address is refused, with how to fix it', async (t) => {
  const db = join(tempDir(t), 'r.db')
  const base = { ...defaultConfig(), port: 0, db, logLevel: 'silent' as const }
  await t.rejects(startRollcall({ ...base, host: '0.0.0.0' }), ConfigError)
  await t.rejects(startRollcall({ ...base, host: '0.0.0.0' }), /--auth on.*--insecure/)
  const insecure = await startTestServer(t, { host: '0.0.0.0', insecure: true })
  t.equal((await insecure.request('GET', '/healthz')).status, 200, '--insecure says it is meant')
  await insecure.close()
  const authed = await startTestServer(t, { host: '0.0.0.0', auth: true, adminToken: ADMIN })
  t.equal((await authed.request('GET', '/v1/services')).status, 401, 'auth on: a public address is fine')
})

t.test('auth on with nobody able to get in is refused; a stored token is enough', async (t) => {
  const db = join(tempDir(t), 'r.db')
  const base = { ...defaultConfig(), port: 0, db, logLevel: 'silent' as const, checks: false }
  await t.rejects(startRollcall({ ...base, auth: true }), /no admin token and no API token.*ROLLCALL_ADMIN_TOKEN/)
  // Tokens made while auth was off (on loopback) let auth be turned on without a bootstrap token.
  const open = await startTestServer(t, { db })
  const created = (await (await open.request('POST', '/v1/tokens', { scopes: ['admin'] })).json()) as { token: string }
  await open.close()
  const s = await startTestServer(t, { db, auth: true })
  const res = await s.request('GET', '/v1/tokens', undefined, { authorization: `Bearer ${created.token}` })
  t.equal(res.status, 200, 'the stored admin token works')
})

t.test('the admin token from a file', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'admin-token')
  writeFileSync(file, `${ADMIN}\n`)
  const s = await startTestServer(t, { auth: true, adminTokenFile: file })
  t.equal((await s.request('GET', '/v1/tokens', undefined, { authorization: `Bearer ${ADMIN}` })).status, 200, 'the trailing newline is not part of it')
  const base = { ...defaultConfig(), port: 0, db: join(dir, 'x.db'), logLevel: 'silent' as const, auth: true }
  await t.rejects(startRollcall({ ...base, adminTokenFile: join(dir, 'missing') }), /--admin-token-file.*ENOENT/)
  writeFileSync(join(dir, 'short'), 'abc\n')
  await t.rejects(startRollcall({ ...base, adminTokenFile: join(dir, 'short') }), /--admin-token-file.*16 to 512/)
  await t.rejects(startRollcall({ ...base, adminToken: ADMIN, adminTokenFile: file }), /not both/)
  await t.rejects(startRollcall({ ...base, adminToken: ADMIN, tlsCert: file }), /--tls-key.*go together/)
})

t.test('tokens at rest: a SHA-256 digest, never the secret; revocation survives a restart', async (t) => {
  const db = join(tempDir(t), 'r.db')
  let s = await startTestServer(t, { db, auth: true, adminToken: ADMIN })
  const auth = { authorization: `Bearer ${ADMIN}` }
  const kept = (await (await s.request('POST', '/v1/tokens', { scopes: ['read'], description: 'kept' }, auth)).json()) as { id: string; token: string }
  const gone = (await (await s.request('POST', '/v1/tokens', { scopes: ['read'] }, auth)).json()) as { id: string; token: string }
  t.equal((await s.request('DELETE', `/v1/tokens/${gone.id}`, undefined, auth)).status, 204)
  await s.close()

  const raw = readFileSync(db).toString('latin1') + readWal(db)
  t.notOk(raw.includes(kept.token), 'the secret is nowhere in the database file')
  t.notOk(raw.includes(kept.token.slice(4, 30)), 'not even part of it')
  const sqlite = new BetterSqlite3(db, { readonly: true })
  const row = sqlite.prepare('SELECT digest FROM tokens WHERE id = ?').get(kept.id) as { digest: Buffer }
  sqlite.close()
  const { createHash } = await import('node:crypto')
  t.same(row.digest, createHash('sha256').update(kept.token).digest(), 'what is kept is the SHA-256 digest')

  s = await startTestServer(t, { db, auth: true, adminToken: ADMIN })
  t.equal((await s.request('GET', '/v1/services', undefined, { authorization: `Bearer ${kept.token}` })).status, 200, 'a token survives a restart')
  t.equal((await s.request('GET', '/v1/services', undefined, { authorization: `Bearer ${gone.token}` })).status, 401, 'and so does a revocation')
})

function readWal(db: string): string {
  try {
    return readFileSync(`${db}-wal`).toString('latin1')
  } catch {
    return ''
  }
}

t.test('the built server refuses a public address with one line and exit code 2', async (t) => {
  const db = join(tempDir(t), 'r.db')
  const run = await runToExit(['--db', db, '--host', '0.0.0.0', '--port', '0'])
  t.equal(run.code, 2, 'exit code 2')
  const lines = run.stderr.trim().split('\n')
  t.equal(lines.length, 1, 'one line')
  t.match(lines[0], /^rollcall: refusing to listen on 0\.0\.0\.0.*--auth on.*--insecure/)
  const noToken = await runToExit(['--db', db, '--auth', 'on', '--port', '0'])
  t.equal(noToken.code, 2)
  t.match(noToken.stderr, /ROLLCALL_ADMIN_TOKEN/)
})
