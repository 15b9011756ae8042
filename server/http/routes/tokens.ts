import type { FastifyPluginAsync } from 'fastify'
import { CreateTokenBody } from '../../../client-sdk/protocol.js'
import type { CreatedToken, TokenInfo, TokensResponse } from '../../../client-sdk/protocol.js'
import type { TokenRecord, TokenStore } from '../../auth/token-store.js'
import { RegistryError } from '../../registry/errors.js'
import { parseWith } from '../errors.js'
import { noQuery } from '../query.js'

/** What the token routes need: the store, and what to do once a token is revoked. */
export interface TokenRoutesOptions {
  tokens: TokenStore
  /** Closes what the token still has open (its watch sockets). */
  onRevoke: (id: string) => void
}

type Query = { Querystring: Record<string, unknown> }

/** A token as listed: never its secret (the store does not have it). */
export function tokenInfo(t: TokenRecord): TokenInfo {
  return {
    id: t.id,
    scopes: [...t.scopes],
    ...(t.description !== undefined && { description: t.description }),
    createdAt: new Date(t.createdAt).toISOString(),
    ...(t.expiresAt !== undefined && { expiresAt: new Date(t.expiresAt).toISOString() }),
    ...(t.revokedAt !== undefined && { revokedAt: new Date(t.revokedAt).toISOString() }),
  }
}

/**
 * POST /v1/tokens, GET /v1/tokens, DELETE /v1/tokens/{id}: API tokens, for admins (the
 * policy in server/auth/policy.ts says so). The secret is in the creation's answer only.
 */
export const tokenRoutes: FastifyPluginAsync<TokenRoutesOptions> = async (app, { tokens, onRevoke }) => {
  app.post<Query>('/v1/tokens', async (request, reply) => {
    noQuery(request.query)
    const body = parseWith(CreateTokenBody, request.body, 'body')
    const { token, secret } = tokens.create(body)
    request.log.info({ tokenId: token.id, scopes: token.scopes }, 'token created')
    const created: CreatedToken = { ...tokenInfo(token), token: secret }
    // The only answer that carries a secret: no cache may keep it.
    return reply.code(201).header('cache-control', 'no-store').send(created)
  })

  app.get<Query>('/v1/tokens', async (request): Promise<TokensResponse> => {
    noQuery(request.query)
    return { tokens: tokens.list().map(tokenInfo) }
  })

  app.delete<Query & { Params: { id?: string } }>('/v1/tokens/:id', async (request, reply) => {
    noQuery(request.query)
    const id = request.params.id ?? ''
    const token = tokens.revoke(id)
    if (token === undefined) throw new RegistryError('NOT_FOUND', `token ${id.slice(0, 64)} does not exist`)
    onRevoke(id)
    request.log.info({ tokenId: id }, 'token revoked')
    return reply.code(204).send()
  })
}
