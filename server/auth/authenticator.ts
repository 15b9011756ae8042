import { timingSafeEqual } from 'node:crypto'
import { Grants } from './grants.js'
import type { TokenStore } from './token-store.js'
import { digestOf } from './token-store.js'

/**
 * Who a request comes from. `label` names the principal for rate limits and watch
 * sockets: a token's id, `@admin` for the bootstrap token, undefined for anonymous.
 */
export type Principal =
  | { kind: 'anonymous'; grants: Grants; label: undefined }
  | { kind: 'token'; grants: Grants; label: string }
  | { kind: 'admin'; grants: Grants; label: string }

/** The principal, or why the credentials presented are refused (a 401's message). */
export type Authentication = { ok: true; principal: Principal } | { ok: false; message: string }

/** Options of the {@link Authenticator}. */
export interface AuthenticatorOptions {
  /** Off: every request may do everything, and no credential is looked at. */
  enabled: boolean
  tokens: TokenStore
  /** What a request without credentials may do when auth is on. */
  anonymousScopes?: readonly string[]
  /** The bootstrap admin token, from configuration. */
  adminToken?: string | undefined
}

/** The label of the bootstrap admin token: `@` never starts a token id. */
export const ADMIN_LABEL = '@admin'

/** Longest credential looked at: anything longer is refused without hashing it. */
const MAX_TOKEN_LENGTH = 512

const BEARER = /^Bearer +([\x21-\x7e]+) *$/i

/**
 * Turns an `Authorization` header (or an `auth` frame's token) into a {@link Principal}.
 * One SHA-256 per request: the digest is compared with the bootstrap token's in constant
 * time, then looked up among the API tokens.
 *
 * @example
 * ```ts
 * const auth = new Authenticator({ enabled: true, tokens, adminToken: process.env.ROLLCALL_ADMIN_TOKEN })
 * const result = auth.authenticate(request.headers.authorization)
 * if (result.ok && result.principal.grants.read) serve()
 * ```
 */
export class Authenticator {
  readonly enabled: boolean
  readonly tokens: TokenStore
  readonly anonymous: Principal
  readonly #adminDigest: Buffer | undefined
  readonly #admin: Principal = { kind: 'admin', grants: Grants.all, label: ADMIN_LABEL }

  constructor(options: AuthenticatorOptions) {
    this.enabled = options.enabled
    this.tokens = options.tokens
    this.anonymous = {
      kind: 'anonymous',
      grants: options.enabled ? Grants.of(options.anonymousScopes ?? []) : Grants.all,
      label: undefined,
    }
    this.#adminDigest = options.adminToken === undefined ? undefined : digestOf(options.adminToken)
  }

  /** Whether a bootstrap admin token is configured. */
  get hasAdminToken(): boolean {
    return this.#adminDigest !== undefined
  }

  /** The principal of a request with this `Authorization` header (or none). */
  authenticate(header: string | undefined): Authentication {
    if (!this.enabled || header === undefined) return { ok: true, principal: this.anonymous }
    const m = BEARER.exec(header)
    if (m === null) return { ok: false, message: 'authorization: must be "Bearer <token>"' }
    return this.verify(m[1] as string)
  }

  /** The principal a bare token stands for. */
  verify(secret: string): Authentication {
    if (secret.length > MAX_TOKEN_LENGTH) return { ok: false, message: 'token: not a valid token' }
    const digest = digestOf(secret)
    // Equal-length digests, so timingSafeEqual never throws and leaks nothing of the secret.
    if (this.#adminDigest !== undefined && timingSafeEqual(digest, this.#adminDigest)) {
      return { ok: true, principal: this.#admin }
    }
    const check = this.tokens.check(digest)
    if (check.ok) return { ok: true, principal: { kind: 'token', grants: check.token.grants, label: check.token.id } }
    switch (check.reason) {
      case 'unknown':
        return { ok: false, message: 'token: not a valid token' }
      case 'expired':
        return { ok: false, message: `token: ${check.token?.id} has expired` }
      case 'revoked':
        return { ok: false, message: `token: ${check.token?.id} has been revoked` }
      default: {
        const never: never = check.reason
        throw new Error(`unknown reason ${String(never)}`)
      }
    }
  }

  /** Whether the principal `label` names is still good (a token may lapse while its socket is open). */
  stillValid(label: string): boolean {
    if (label === ADMIN_LABEL) return true
    const token = this.tokens.get(label)
    return token !== undefined && this.tokens.isActive(token)
  }
}
