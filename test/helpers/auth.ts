import type { CreatedToken } from '../../client-sdk/protocol.js'
import type { Config } from '../../server/config.js'
import { ManualClock } from '../../server/registry/clock.js'
import type { RollcallDeps } from '../../server/server.js'
import type { TestServer } from './server.js'
import { startTestServer } from './server.js'

/** The bootstrap admin token of {@link startAuthServer}. */
export const ADMIN = 'admin-secret-for-tests-0123456789'

export interface AuthServer extends TestServer {
  clock: ManualClock
  /** `fetch` with `Authorization: Bearer <token>` (none when token is undefined). */
  as(token: string | undefined, method: string, path: string, json?: unknown, headers?: Record<string, string>): Promise<Response>
  /** Creates a token with the admin token; the answer holds the secret. */
  token(scopes: string[], extra?: { ttlSeconds?: number; description?: string }): Promise<CreatedToken>
  /** Everything the API shows, read back with the admin token, as text to compare. */
  state(): Promise<string>
}

/**
 * A real server with auth on, the bootstrap admin token {@link ADMIN}, checks off, no
 * sweeper, and a manual clock shared by leases and token expiry.
 */
export async function startAuthServer(
  t: { teardown(fn: () => unknown): void },
  overrides: Partial<Config> = {},
  deps: RollcallDeps = {},
): Promise<AuthServer> {
  const clock = new ManualClock(Date.now())
  const s = await startTestServer(t, { auth: true, adminToken: ADMIN, checks: false, ...overrides }, { clock, sweepIntervalMs: 0, ...deps })
  const as: AuthServer['as'] = (token, method, path, json, headers = {}) =>
    s.request(method, path, json, token === undefined ? headers : { authorization: `Bearer ${token}`, ...headers })
  return {
    ...s,
    clock,
    as,
    async token(scopes, extra = {}) {
      const res = await as(ADMIN, 'POST', '/v1/tokens', { scopes, ...extra })
      if (res.status !== 201) throw new Error(`token: ${res.status} ${await res.text()}`)
      return (await res.json()) as CreatedToken
    },
    async state() {
      const services = (await (await as(ADMIN, 'GET', '/v1/services')).json()) as { services: Array<{ name: string }> }
      const parts = [JSON.stringify(services)]
      for (const { name } of services.services) parts.push(await (await as(ADMIN, 'GET', `/v1/services/${name}/instances`)).text())
      parts.push(await (await as(ADMIN, 'GET', '/v1/tokens')).text())
      return parts.join('\n')
    },
  }
}
