import { readFileSync } from 'node:fs'
import type { Config } from '../config.js'
import { ConfigError } from '../config.js'

/** Requests per minute per token or IP when auth is on and `--rate-limit` is not given. */
export const DEFAULT_RATE_LIMIT = 6000

/** Whether `host` only takes connections from this machine. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase()
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || /^::ffff:127\./.test(h)
}

/**
 * Refuses a configuration that would expose an open registry: whoever can write to it
 * decides where traffic goes. Loopback without auth is the local quick start; anything
 * else needs `--auth on`, or `--insecure` to say it is meant.
 */
export function checkExposure(config: Config): void {
  if (config.auth || config.insecure || isLoopback(config.host)) return
  throw new ConfigError(
    `refusing to listen on ${config.host} with auth off: anyone who reaches the port could register any service. ` +
      'Turn auth on (--auth on --admin-token-file FILE, or ROLLCALL_AUTH=on ROLLCALL_ADMIN_TOKEN=...), or pass --insecure',
  )
}

/** The bootstrap admin token: `--admin-token` / ROLLCALL_ADMIN_TOKEN, or the first line of `--admin-token-file`. */
export function adminTokenOf(config: Config): string | undefined {
  if (config.adminToken !== undefined && config.adminTokenFile !== undefined) {
    throw new ConfigError('invalid --admin-token-file: give either --admin-token or --admin-token-file, not both')
  }
  if (config.adminTokenFile === undefined) return config.adminToken
  let text: string
  try {
    text = readFileSync(config.adminTokenFile, 'utf8')
  } catch (err) {
    throw new ConfigError(`invalid --admin-token-file (${config.adminTokenFile}): cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  const token = text.split(/\r?\n/)[0]?.trim() ?? ''
  if (token.length < 16 || token.length > 512 || !/^[\x21-\x7e]+$/.test(token)) {
    throw new ConfigError(
      `invalid --admin-token-file (${config.adminTokenFile}): its first line must be a token of 16 to 512 printable characters`,
    )
  }
  return token
}

/** With auth on, somebody must be able to get in: a bootstrap admin token or a stored token. */
export function checkCanAuthenticate(config: Config, hasAdminToken: boolean, activeTokens: number): void {
  if (!config.auth || hasAdminToken || activeTokens > 0) return
  throw new ConfigError(
    'invalid --auth on: no admin token and no API token exist, so nobody could get in. ' +
      'Give one with --admin-token-file FILE or ROLLCALL_ADMIN_TOKEN (e.g. ROLLCALL_ADMIN_TOKEN=$(openssl rand -hex 32))',
  )
}

/** The certificate and key for HTTPS, or undefined without `--tls-cert`/`--tls-key`. */
export function tlsOf(config: Config): { cert: Buffer; key: Buffer } | undefined {
  if (config.tlsCert === undefined && config.tlsKey === undefined) return undefined
  if (config.tlsCert === undefined || config.tlsKey === undefined) {
    throw new ConfigError(`invalid --${config.tlsCert === undefined ? 'tls-cert' : 'tls-key'}: --tls-cert and --tls-key go together`)
  }
  return { cert: readPem(config.tlsCert, 'tls-cert'), key: readPem(config.tlsKey, 'tls-key') }
}

function readPem(path: string, setting: string): Buffer {
  let pem: Buffer
  try {
    pem = readFileSync(path)
  } catch (err) {
    throw new ConfigError(`invalid --${setting} (${path}): cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  if (!pem.includes('-----BEGIN ')) throw new ConfigError(`invalid --${setting} (${path}): not a PEM file`)
  return pem
}

/** The rate limit in force: the setting, or {@link DEFAULT_RATE_LIMIT} with auth on and none without. */
export function rateLimitOf(config: Config): number {
  return config.rateLimit ?? (config.auth ? DEFAULT_RATE_LIMIT : 0)
}
