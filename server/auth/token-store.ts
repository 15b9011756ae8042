import { createHash, randomBytes } from 'node:crypto'
import type { Database, Statement } from 'better-sqlite3'
import type { Clock } from '../registry/clock.js'
import { systemClock } from '../registry/clock.js'
import { Grants } from './grants.js'

/** Every secret starts with this, so that secret scanners and people can tell one. */
export const TOKEN_PREFIX = 'rct_'

/** One API token as the server keeps it: never its secret, only the secret's digest. */
export interface TokenRecord {
  readonly id: string
  readonly scopes: readonly string[]
  readonly grants: Grants
  readonly description: string | undefined
  readonly createdAt: number
  readonly expiresAt: number | undefined
  revokedAt: number | undefined
}

/** What {@link TokenStore.create} takes. */
export interface NewToken {
  scopes: readonly string[]
  description?: string | undefined
  ttlSeconds?: number | undefined
}

/** Why a presented secret is no good, or the token it belongs to. */
export type TokenCheck =
  | { ok: true; token: TokenRecord }
  | { ok: false; reason: 'unknown' | 'expired' | 'revoked'; token?: TokenRecord }

interface Row {
  id: string
  digest: Buffer
  scopes: string
  description: string | null
  created_at: number
  expires_at: number | null
  revoked_at: number | null
}

/** SHA-256 of a presented secret: the only form in which a secret is kept or compared. */
export function digestOf(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest()
}

/**
 * The API tokens, in the registry's SQLite file (migration 002) and in memory. Lookups are
 * by the secret's digest in a map, so a request costs one SHA-256 and no query; writes
 * (create, revoke) are rare and go to SQLite synchronously before memory changes, so a
 * revocation holds from the next request on, across restarts too.
 *
 * A map lookup by digest is not a comparison of secrets: an attacker who could time it
 * would learn about digests of guesses, which says nothing about a 256-bit secret.
 *
 * @example
 * ```ts
 * const tokens = TokenStore.open(store.database, clock)
 * const { token, secret } = tokens.create({ scopes: ['register:orders'], ttlSeconds: 3600 })
 * tokens.verify(secret) // { ok: true, token }
 * ```
 */
export class TokenStore {
  readonly #clock: Clock
  readonly #byDigest = new Map<string, TokenRecord>()
  readonly #byId = new Map<string, TokenRecord>()
  readonly #insert: Statement
  readonly #revoke: Statement

  private constructor(db: Database, clock: Clock) {
    this.#clock = clock
    this.#insert = db.prepare(
      'INSERT INTO tokens (id, digest, scopes, description, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)',
    )
    this.#revoke = db.prepare('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL')
    for (const row of db.prepare('SELECT * FROM tokens').all() as Row[]) {
      const scopes = JSON.parse(row.scopes) as string[]
      this.#remember(row.digest, {
        id: row.id,
        scopes,
        grants: Grants.of(scopes),
        description: row.description ?? undefined,
        createdAt: row.created_at,
        expiresAt: row.expires_at ?? undefined,
        revokedAt: row.revoked_at ?? undefined,
      })
    }
  }

  /** Loads every token of `db` (migrated) into memory. */
  static open(db: Database, clock: Clock = systemClock): TokenStore {
    return new TokenStore(db, clock)
  }

  /** Tokens neither expired nor revoked. */
  get activeCount(): number {
    let n = 0
    for (const t of this.#byId.values()) if (this.isActive(t)) n++
    return n
  }

  /** Creates a token; the secret is returned this once and kept nowhere. */
  create(spec: NewToken): { token: TokenRecord; secret: string } {
    const secret = TOKEN_PREFIX + randomBytes(32).toString('base64url')
    const digest = digestOf(secret)
    const now = this.#clock.now()
    let id = newId()
    while (this.#byId.has(id)) id = newId()
    const token: TokenRecord = {
      id,
      scopes: [...new Set(spec.scopes)],
      grants: Grants.of(spec.scopes),
      description: spec.description,
      createdAt: now,
      expiresAt: spec.ttlSeconds === undefined ? undefined : now + spec.ttlSeconds * 1000,
      revokedAt: undefined,
    }
    this.#insert.run(id, digest, JSON.stringify(token.scopes), token.description ?? null, now, token.expiresAt ?? null)
    this.#remember(digest, token)
    return { token, secret }
  }

  /** Every token, oldest first. */
  list(): TokenRecord[] {
    return [...this.#byId.values()].sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1))
  }

  get(id: string): TokenRecord | undefined {
    return this.#byId.get(id)
  }

  /** Revokes a token from now on; revoking it again changes nothing. Undefined if unknown. */
  revoke(id: string): TokenRecord | undefined {
    const token = this.#byId.get(id)
    if (token === undefined) return undefined
    if (token.revokedAt === undefined) {
      const now = this.#clock.now()
      this.#revoke.run(now, id)
      token.revokedAt = now
    }
    return token
  }

  /** Whether `token` may be used now. */
  isActive(token: TokenRecord): boolean {
    return token.revokedAt === undefined && (token.expiresAt === undefined || this.#clock.now() < token.expiresAt)
  }

  /** The token whose secret has `digest`, if it may be used now. */
  check(digest: Buffer): TokenCheck {
    const token = this.#byDigest.get(digest.toString('hex'))
    if (token === undefined) return { ok: false, reason: 'unknown' }
    if (token.revokedAt !== undefined) return { ok: false, reason: 'revoked', token }
    if (token.expiresAt !== undefined && this.#clock.now() >= token.expiresAt) return { ok: false, reason: 'expired', token }
    return { ok: true, token }
  }

  #remember(digest: Buffer, token: TokenRecord): void {
    this.#byDigest.set(digest.toString('hex'), token)
    this.#byId.set(token.id, token)
  }
}

/** `tok_` and 16 hex digits: random, so that ids say nothing about order or count. */
function newId(): string {
  return `tok_${randomBytes(8).toString('hex')}`
}
