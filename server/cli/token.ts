/**
 * `rollcall token create|list|revoke`: API tokens, over POST/GET /v1/tokens and
 * DELETE /v1/tokens/{id} (an admin token is needed for all three).
 */
import type { CreatedToken, TokensResponse } from '../../client-sdk/protocol.js'
import type { Command, Parsed } from './command.js'
import { CONNECTION_HELP, CliError, EXIT_OK, UsageError, help, intFlag, parse, positionals, printJson, restFor } from './command.js'
import { ago, table } from './output.js'

const HELP = `Usage: rollcall token <create|list|revoke> [options]

Manages API tokens. Every subcommand needs an admin token (--token or ROLLCALL_TOKEN).

  rollcall token create --scope SCOPE... [--description TEXT] [--ttl SECONDS]
      Creates a token and prints it. The secret is shown this once: store it now.
      --scope SCOPE        a scope the token grants; repeat for several (at least one)
      --description TEXT   what the token is for
      --ttl SECONDS        expires after this long (default: never)
  rollcall token list
      Lists tokens: id, scopes, description, created, expires, revoked. Never secrets.
  rollcall token revoke <id>
      Revokes a token at once; watch connections opened with it are closed.

${CONNECTION_HELP}

Examples:
  rollcall token create --scope admin --description 'ops laptop'
  TOKEN=$(rollcall token create --scope 'register:orders' --json | jq -r .token)`

export const tokenCommand: Command = {
  name: 'token',
  help: HELP,
  async run(argv) {
    const [sub, ...rest] = argv
    if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') return help(this)
    switch (sub) {
      case 'create':
        return create(rest, this)
      case 'list':
        return list(rest, this)
      case 'revoke':
        return revoke(rest, this)
      default:
        throw new UsageError(`unknown token command ${JSON.stringify(sub)}: create, list or revoke`)
    }
  },
}

async function create(argv: string[], command: Command): Promise<number> {
  const p = parse(argv, {
    scope: { type: 'string', multiple: true },
    description: { type: 'string' },
    ttl: { type: 'string' },
  })
  if (p.help) return help(command)
  positionals(p, [])
  const scopes = (p.values.scope as string[] | undefined) ?? []
  if (scopes.length === 0) throw new UsageError('missing --scope: a token needs at least one')
  const ttlSeconds = intFlag(p.values.ttl, 'ttl', 1, 10 * 365 * 86_400)
  const body = {
    scopes,
    ...(p.values.description !== undefined && { description: p.values.description }),
    ...(ttlSeconds !== undefined && { ttlSeconds }),
  }
  const { body: created } = await restFor(p).request<CreatedToken>('POST', '/v1/tokens', body)
  if (p.json) printJson(created)
  else {
    process.stdout.write(
      `created token ${created.id} (scopes ${created.scopes.join(', ')}` +
        `${created.expiresAt !== undefined ? `, expires ${created.expiresAt}` : ''}).\n` +
        'This is the only time it is shown; store it now:\n\n' +
        `  ${created.token}\n`,
    )
  }
  return EXIT_OK
}

async function list(argv: string[], command: Command): Promise<number> {
  const p = parse(argv, {})
  if (p.help) return help(command)
  positionals(p, [])
  const { body } = await restFor(p).request<TokensResponse>('GET', '/v1/tokens')
  if (p.json) printJson(body)
  else if (body.tokens.length === 0) process.stdout.write('no tokens\n')
  else {
    const now = Date.now()
    const rows = body.tokens.map((t) => [
      t.id,
      t.scopes.join(','),
      t.description ?? '-',
      ago(t.createdAt, now),
      t.expiresAt === undefined ? 'never' : ago(t.expiresAt, now),
      t.revokedAt === undefined ? '-' : { text: ago(t.revokedAt, now), tint: 'red' as const },
    ])
    process.stdout.write(table(['ID', 'SCOPES', 'DESCRIPTION', 'CREATED', 'EXPIRES', 'REVOKED'], rows))
  }
  return EXIT_OK
}

async function revoke(argv: string[], command: Command): Promise<number> {
  const p: Parsed = parse(argv, {})
  if (p.help) return help(command)
  const [id] = positionals(p, ['id']) as [string]
  const res = await restFor(p).request('DELETE', `/v1/tokens/${encodeURIComponent(id)}`)
  if (res.status === 404) throw new CliError(`no token ${id}`)
  if (p.json) printJson({ id, revoked: true })
  else process.stdout.write(`revoked token ${id}\n`)
  return EXIT_OK
}
