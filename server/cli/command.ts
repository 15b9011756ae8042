/**
 * What every `rollcall` command shares: its shape, argument parsing with the common flags
 * (`--url`, `--token`, `--json`, `--help`), the connection they name, and the errors that
 * map to the exit codes scripts rely on: 0 ok, 1 error, 2 usage.
 */
import { parseArgs } from 'node:util'
import type { ParseArgsConfig } from 'node:util'
import { RegistryRest } from '../../client-sdk/rest.js'
import { RegistryApiError, RollcallError } from '../../client-sdk/errors.js'
import { NAME_PATTERN } from '../../client-sdk/protocol.js'

/** Exit codes: scripts rely on these. */
export const EXIT_OK = 0
export const EXIT_ERROR = 1
export const EXIT_USAGE = 2

/** The server when neither `--url` nor ROLLCALL_URL says otherwise. */
export const DEFAULT_URL = 'http://127.0.0.1:7733'

/** One `rollcall` command. `run` resolves with the exit code. */
export interface Command {
  name: string
  /** The whole `rollcall NAME --help` text. */
  help: string
  run(argv: string[]): Promise<number>
}

/** Bad arguments: printed with a pointer to `--help`, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

/** A failure to report in one line, exit code 1. */
export class CliError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'CliError'
  }
}

/** The flags every command that talks to a server takes, for the help texts. */
export const CONNECTION_HELP = `Connection:
  --url URL        the server (env ROLLCALL_URL; default ${DEFAULT_URL})
  --token TOKEN    a bearer token (env ROLLCALL_TOKEN)
  --json           machine-readable output
  -h, --help       this help`

type Options = NonNullable<ParseArgsConfig['options']>

const COMMON: Options = {
  url: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
}

/** Parsed arguments of a command that talks to a server. */
export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>
  positionals: string[]
  help: boolean
  json: boolean
  url: string
  token: string | undefined
}

/**
 * Parses `argv` strictly with the command's own `options` plus the common ones. Unknown
 * flags, missing values and bad URLs are {@link UsageError}s.
 */
export function parse(argv: string[], options: Options, env: NodeJS.ProcessEnv = process.env): Parsed {
  let parsed: { values: Record<string, unknown>; positionals: string[] }
  try {
    parsed = parseArgs({ args: argv, options: { ...COMMON, ...options }, strict: true, allowPositionals: true })
  } catch (err) {
    throw new UsageError(((err as Error).message.split('\n')[0] as string).replace(/\. To specify a positional.*$/, ''))
  }
  const values = parsed.values as Parsed['values']
  const url = (values.url as string | undefined) ?? nonEmpty(env.ROLLCALL_URL) ?? DEFAULT_URL
  const help = values.help === true
  if (!help) checkUrl(url)
  return {
    values,
    positionals: parsed.positionals,
    help,
    json: values.json === true,
    url: url.replace(/\/+$/, ''),
    token: (values.token as string | undefined) ?? nonEmpty(env.ROLLCALL_TOKEN),
  }
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s
}

function checkUrl(url: string): void {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw new UsageError(`--url: not a URL: ${JSON.stringify(url)}`)
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`--url: must be http:// or https://, not ${u.protocol}`)
}

/** The SDK's REST client for the parsed connection. */
export function restFor(p: Parsed): RegistryRest {
  return new RegistryRest({ urls: [p.url], token: p.token })
}

/** Exactly `count` positionals named `names`, or a usage error naming the first missing one. */
export function positionals(p: Parsed, names: string[]): string[] {
  if (p.positionals.length < names.length) throw new UsageError(`missing <${names[p.positionals.length]}>`)
  if (p.positionals.length > names.length) throw new UsageError(`unexpected argument: ${p.positionals[names.length]}`)
  return p.positionals
}

/** A whole number in [min, max] from a flag, or a usage error naming the flag. */
export function intFlag(value: unknown, flag: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined
  const text = String(value)
  if (!/^\d+$/.test(text)) throw new UsageError(`--${flag}: must be a whole number, not ${JSON.stringify(text)}`)
  const n = Number(text)
  if (n < min || n > max) throw new UsageError(`--${flag}: must be from ${min} to ${max}`)
  return n
}

/** `k=v` pairs from a repeatable flag. */
export function pairsFlag(value: unknown, flag: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const pair of (value as string[] | undefined) ?? []) {
    const at = pair.indexOf('=')
    if (at <= 0) throw new UsageError(`--${flag}: expected KEY=VALUE, not ${JSON.stringify(pair)}`)
    out[pair.slice(0, at)] = pair.slice(at + 1)
  }
  return out
}

/** One line for stderr describing any error: the server's code and message, or why it could not be reached. */
export function describeError(err: unknown): string {
  if (err instanceof RegistryApiError) return `${err.message} (${err.code}, HTTP ${err.status})`
  if (err instanceof RollcallError) {
    const cause = (err as { cause?: unknown }).cause
    const why = cause instanceof Error ? (cause.cause instanceof Error ? cause.cause.message : cause.message) : undefined
    return why === undefined ? err.message : `${err.message}: ${why}`
  }
  return err instanceof Error ? err.message : String(err)
}

/** Writes `value` as indented JSON on stdout (`watch --json` writes one line per message instead). */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`)
}

/** Prints a command's help on stdout: asked for, so not an error. */
export function help(command: Command): number {
  process.stdout.write(`${command.help}\n`)
  return EXIT_OK
}

/** A usage error for a service name or id the server would refuse anyway. */
export function checkName(value: string, what: string): void {
  if (!NAME_PATTERN.test(value)) throw new UsageError(`<${what}>: must match ${NAME_PATTERN.source}, not ${JSON.stringify(value)}`)
}
