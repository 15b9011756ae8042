import rateLimit, { normalizeIP } from '@fastify/rate-limit'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { CLOSE_UNAUTHORIZED } from '../../client-sdk/protocol.js'
import type { WatchHub } from '../http/watch/watch-hub.js'
import type { AuthGate } from '../http/watch/watch-session.js'
import { RegistryError } from '../registry/errors.js'
import type { Authenticator, Principal } from './authenticator.js'
import type { Access } from './policy.js'
import { accessOf } from './policy.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Who sent the request; null when the credentials presented were refused. */
    principal: Principal | null
    /** Why the credentials were refused: the 401's message. */
    authFailure: string | null
    /** The watch socket's label (the token id), read by the watch route. */
    tokenId: string | undefined
    /** Set on an upgrade to GET /v1/watch without credentials: a token may come in the first frame. */
    awaitsAuthFrame: boolean
  }
}

/** Options of {@link installAuth}. */
export interface HttpAuthOptions {
  authenticator: Authenticator
  /** Requests per minute per token (per IP without one); 0: no limit. */
  rateLimit: number
  /** Most open watch sockets per token; past it the upgrade gets a 429. */
  maxWatchPerToken: number
  /** Open watch sockets of a label (a token id). */
  watchCount: (label: string) => number
}

/** Routes a liveness or readiness probe uses: never rate limited, a probe must not fail for it. */
const UNLIMITED = new Set(['/healthz', '/readyz'])

/**
 * Authentication, the rate limit and authorization, as hooks on every route, in that
 * order: `onRequest` works out who is asking (never refusing yet), the rate limit's own
 * `onRequest` counts the request against that token or IP, so floods of bad tokens are
 * limited too, and `preParsing` refuses what the principal may not do before any body is
 * read. A batch heartbeat is checked once more in `preHandler`, entry by entry.
 *
 * Call before any route is registered: the rate limit attaches itself to routes as they
 * are added.
 */
export async function installAuth(app: FastifyInstance, options: HttpAuthOptions): Promise<void> {
  const { authenticator, maxWatchPerToken, watchCount } = options
  app.decorateRequest('principal', null)
  app.decorateRequest('authFailure', null)
  app.decorateRequest('tokenId', undefined)
  app.decorateRequest('awaitsAuthFrame', false)

  // With auth off and no rate limit nothing reads the principal: no hook on the hot path.
  if (authenticator.enabled || options.rateLimit > 0) {
    app.addHook('onRequest', (request, _reply, done) => {
      const result = authenticator.authenticate(request.headers.authorization)
      if (result.ok) {
        request.principal = result.principal
        request.tokenId = result.principal.label
      } else {
        request.authFailure = result.message
      }
      done()
    })
  }

  if (options.rateLimit > 0) {
    await app.register(rateLimit, {
      max: options.rateLimit,
      timeWindow: 60_000,
      // Enough distinct keys that a spread of addresses cannot push a flooding one out.
      cache: 50_000,
      keyGenerator: (request) => {
        const label = request.principal?.label
        return label !== undefined ? `token:${label}` : `ip:${normalizeIP(request.ip)}`
      },
      allowList: (request) => UNLIMITED.has(request.routeOptions.url ?? ''),
      errorResponseBuilder: (_request, context) =>
        new RegistryError('RATE_LIMITED', `rate limit of ${context.max} requests per minute passed; retry in ${context.after}`),
    })
  }

  if (!authenticator.enabled) return

  app.addHook('preParsing', async (request, reply) => {
    const access = accessOf(request.method, request.routeOptions.url)
    if (access === 'public') return
    const principal = request.principal
    if (principal === null) throw unauthenticated(reply, request.authFailure ?? 'token: not valid')
    if (access === 'watch' && !principal.grants.read && principal.kind === 'anonymous' && isUpgrade(request)) {
      // No credentials at the upgrade: the socket opens and must send an auth frame first.
      request.awaitsAuthFrame = true
      return
    }
    if (!allows(principal, access, request)) throw denied(reply, principal, scopeNeeded(access, request))
    if (access === 'watch' && principal.label !== undefined && watchCount(principal.label) >= maxWatchPerToken) {
      throw new RegistryError('RATE_LIMITED', `watch: at most ${maxWatchPerToken} open watch connections per token`)
    }
  })

  app.addHook('preHandler', async (request, reply) => {
    if (accessOf(request.method, request.routeOptions.url) !== 'register-batch') return
    const principal = request.principal as Principal
    if (principal.grants.admin) return
    // The body is not validated yet: entries that are not {service: string} are left to
    // the route's 400, and a body that passes it has had every entry checked here.
    const entries = (request.body as { instances?: unknown } | null | undefined)?.instances
    if (!Array.isArray(entries)) return
    for (const entry of entries) {
      const service = (entry as { service?: unknown } | null)?.service
      if (typeof service === 'string' && !principal.grants.canRegister(service)) {
        throw denied(reply, principal, `register:${service}`)
      }
    }
  })
}

function allows(principal: Principal, access: Exclude<Access, 'public'>, request: FastifyRequest): boolean {
  const grants = principal.grants
  switch (access) {
    case 'read':
    case 'watch':
      return grants.read
    case 'admin':
      return grants.admin
    case 'register':
      return grants.canRegister((request.params as { service?: string }).service ?? '')
    case 'register-batch':
      return grants.canRegisterSome
    default: {
      const never: never = access
      throw new Error(`unknown access ${String(never)}`)
    }
  }
}

function scopeNeeded(access: Exclude<Access, 'public'>, request: FastifyRequest): string {
  switch (access) {
    case 'read':
    case 'watch':
      return 'read'
    case 'admin':
      return 'admin'
    case 'register':
      return `register:${(request.params as { service?: string }).service ?? ''}`
    case 'register-batch':
      return 'register:<service>'
    default: {
      const never: never = access
      throw new Error(`unknown access ${String(never)}`)
    }
  }
}

function isUpgrade(request: FastifyRequest): boolean {
  return (request.headers.upgrade ?? '').toLowerCase() === 'websocket'
}

/** 401, with the challenge RFC 6750 asks for. */
function unauthenticated(reply: FastifyReply, message: string): RegistryError {
  void reply.header('www-authenticate', 'Bearer realm="rollcall"')
  return new RegistryError('UNAUTHENTICATED', message)
}

/** Anonymous: 401 (a token may help); a token without the scope: 403. */
function denied(reply: FastifyReply, principal: Principal, scope: string): RegistryError {
  if (principal.kind === 'anonymous') {
    return unauthenticated(reply, `authorization: needs a token with scope ${scope} (Authorization: Bearer <token>)`)
  }
  return new RegistryError('FORBIDDEN', `token: ${principal.label} lacks scope ${scope}`)
}

/** How a watch socket opened without credentials authenticates in its first frame. */
export function watchAuthGate(authenticator: Authenticator): AuthGate {
  return {
    authenticate(token) {
      const result = authenticator.verify(token)
      if (!result.ok) return { ok: false, code: 'UNAUTHENTICATED', message: result.message }
      const { principal } = result
      if (!principal.grants.read) return { ok: false, code: 'FORBIDDEN', message: `token: ${principal.label} lacks scope read` }
      return { ok: true, label: principal.label as string }
    },
  }
}

/**
 * Closes the watch sockets of tokens that expired or were revoked since they opened
 * (revocation closes them at once; expiry has no moment of its own, so the sweep looks).
 */
export function closeLapsedWatches(hub: WatchHub, authenticator: Authenticator): void {
  for (const label of hub.labels()) {
    if (!authenticator.stillValid(label)) {
      hub.closeWhere((session) => session.label === label, CLOSE_UNAUTHORIZED, 'token expired')
    }
  }
}
