import { parseArgs } from 'node:util'
import { z } from 'zod'
import { Scope } from '../client-sdk/protocol.js'

/**
 * Every setting: its flag, its ROLLCALL_ variable, its default and its validation. Flags
 * win over the environment. Strings come in, typed values go out.
 */
const SETTINGS = {
  host: { env: 'ROLLCALL_HOST', schema: z.string().min(1).default('127.0.0.1') },
  port: { env: 'ROLLCALL_PORT', schema: intText(0, 65535).default(7733) },
  db: { env: 'ROLLCALL_DB', schema: z.string().min(1).default('./data/rollcall.db') },
  'log-level': {
    env: 'ROLLCALL_LOG_LEVEL',
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  },
  durability: { env: 'ROLLCALL_DURABILITY', schema: z.enum(['normal', 'full']).default('normal') },
  'self-preservation-threshold': {
    env: 'ROLLCALL_SELF_PRESERVATION_THRESHOLD',
    schema: fractionText().default(0.5),
  },
  'self-preservation-min': { env: 'ROLLCALL_SELF_PRESERVATION_MIN', schema: intText(0, 1_000_000).default(10) },
  'self-preservation-window': { env: 'ROLLCALL_SELF_PRESERVATION_WINDOW', schema: intText(0, 3600).default(30) },
  'change-history': { env: 'ROLLCALL_CHANGE_HISTORY', schema: intText(10_000, 10_000_000).default(10_000) },
  // Cluster mode (README-cluster.md): several nodes over one etcd cluster instead of SQLite.
  store: { env: 'ROLLCALL_STORE', schema: z.enum(['sqlite', 'etcd'], { error: 'must be sqlite or etcd' }).default('sqlite') },
  'etcd-endpoints': { env: 'ROLLCALL_ETCD_ENDPOINTS', schema: endpointList().default(['http://127.0.0.1:2379']) },
  'etcd-prefix': {
    env: 'ROLLCALL_ETCD_PREFIX',
    schema: z
      .string()
      .regex(/^\/[A-Za-z0-9._\/-]*[A-Za-z0-9._-]$/, { error: 'must start with / and hold only letters, digits, . _ - /' })
      .default('/rollcall'),
  },
  // A dead node leaves the election and the check rota this long after it died.
  'etcd-session-ttl': { env: 'ROLLCALL_ETCD_SESSION_TTL', schema: intText(2, 300).default(10) },
  checks: {
    env: 'ROLLCALL_CHECKS',
    schema: z
      .enum(['on', 'off'], { error: 'must be on or off' })
      .transform((v) => v === 'on')
      .default(true),
  },
  'check-concurrency': { env: 'ROLLCALL_CHECK_CONCURRENCY', schema: intText(1, 10_000).default(64) },
  // Service names are a metrics label only for this many services; the rest add up under
  // service="_other", so a registry of many short-lived services cannot blow up Prometheus.
  'metrics-max-services': { env: 'ROLLCALL_METRICS_MAX_SERVICES', schema: intText(0, 10_000).default(100) },
  // Security: README-security.md says how these fit together. server/auth/startup.ts
  // checks the combinations (auth on needs a token; a public address needs auth).
  auth: { env: 'ROLLCALL_AUTH', schema: onOff().default(false) },
  'anonymous-scopes': { env: 'ROLLCALL_ANONYMOUS_SCOPES', schema: anonymousScopes().default([]) },
  // On the command line a token shows in `ps`: the variable or the file is the better place.
  'admin-token': {
    env: 'ROLLCALL_ADMIN_TOKEN',
    schema: z.string().min(16, { error: 'must be at least 16 characters' }).max(512).optional(),
  },
  'admin-token-file': { env: 'ROLLCALL_ADMIN_TOKEN_FILE', schema: z.string().min(1).optional() },
  insecure: { env: 'ROLLCALL_INSECURE', boolean: true, schema: onOff().default(false) },
  'tls-cert': { env: 'ROLLCALL_TLS_CERT', schema: z.string().min(1).optional() },
  'tls-key': { env: 'ROLLCALL_TLS_KEY', schema: z.string().min(1).optional() },
  // Requests per minute per token (per IP without one). Unset: 6000 with auth on, none
  // without it (a loopback server for development and benchmarks). 0: none.
  'rate-limit': { env: 'ROLLCALL_RATE_LIMIT', schema: intText(0, 10_000_000).optional() },
  'max-watch-per-token': { env: 'ROLLCALL_MAX_WATCH_PER_TOKEN', schema: intText(1, 1_000_000).default(100) },
} as const

type Settings = typeof SETTINGS
export type SettingName = keyof Settings

/** The validated configuration. */
export interface Config {
  host: string
  port: number
  db: string
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
  durability: 'normal' | 'full'
  selfPreservationThreshold: number
  selfPreservationMin: number
  /** Seconds over which lease expiries count together for self-preservation; 0: one sweep. */
  selfPreservationWindow: number
  changeHistory: number
  /** Where state lives: one SQLite file, or an etcd cluster shared by several nodes. */
  store: 'sqlite' | 'etcd'
  /** etcd client URLs, for `store: etcd`. */
  etcdEndpoints: string[]
  /** Key prefix of this rollcall cluster in etcd. */
  etcdPrefix: string
  /** Seconds: TTL of a node's session lease (its election bid and its check-rota entry). */
  etcdSessionTtl: number
  /** Whether the server runs active checks; off: checks are accepted but ignored. */
  checks: boolean
  /** Most active-check probes in flight at once. */
  checkConcurrency: number
  /** Most services that get their own `service` label in /metrics; the rest are `_other`. */
  metricsMaxServices: number
  /** Whether every request needs a scope (anonymous requests get `anonymousScopes`). */
  auth: boolean
  /** What a request without a token may do when auth is on: `read`, `register:...`. */
  anonymousScopes: string[]
  /** The bootstrap admin token (ROLLCALL_ADMIN_TOKEN), if any. */
  adminToken: string | undefined
  /** A file holding the bootstrap admin token, read at start. */
  adminTokenFile: string | undefined
  /** Allows listening on a non-loopback address without auth. */
  insecure: boolean
  /** PEM certificate chain and private key files: both or neither; with them, HTTPS. */
  tlsCert: string | undefined
  tlsKey: string | undefined
  /** Requests per minute per token or IP; undefined: 6000 with auth on, none without. 0: none. */
  rateLimit: number | undefined
  /** Most open watch connections per token. */
  maxWatchPerToken: number
}

/** Comma-separated http(s) URLs, e.g. `http://10.0.0.1:2379,http://10.0.0.2:2379`. */
function endpointList() {
  return z
    .string()
    .transform((v) => v.split(',').map((e) => e.trim()).filter((e) => e !== ''))
    .pipe(
      z
        .array(z.url({ protocol: /^https?$/, error: 'must be http:// or https:// URLs, comma-separated' }))
        .min(1, { error: 'must name at least one endpoint' }),
    )
}

function intText(min: number, max: number) {
  return z
    .string()
    .regex(/^\d+$/, { error: 'must be a whole number' })
    .transform(Number)
    .pipe(z.int().min(min, { error: `must be >= ${min}` }).max(max, { error: `must be <= ${max}` }))
}

function onOff() {
  return z
    .enum(['on', 'off'], { error: 'must be on or off' })
    .transform((v) => v === 'on')
}

/** A comma-separated list of scopes; `admin` is refused (that is auth off). */
function anonymousScopes() {
  return z
    .string()
    .transform((v) => v.split(',').map((s) => s.trim()).filter((s) => s !== ''))
    .pipe(
      z
        .array(Scope)
        .refine((scopes) => !scopes.includes('admin'), { error: 'admin cannot be anonymous: use --auth off instead' }),
    )
}

function fractionText() {
  return z
    .string()
    .regex(/^(0(\.\d+)?|1(\.0+)?)$/, { error: 'must be a number from 0 to 1' })
    .transform(Number)
}

/** One setting as `rollcall serve --help` lists it. */
export interface SettingHelp {
  flag: string
  env: string
  /** The default as it would be written on the command line. */
  default: string
  /** A bare flag (`--insecure`), which takes no value; its variable says on or off. */
  bare: boolean
}

/** Every setting, its variable and its default, in the order of the table above. */
export function describeSettings(): SettingHelp[] {
  return (Object.entries(SETTINGS) as Array<[SettingName, Settings[SettingName]]>).map(([name, setting]) => {
    const value: unknown = (setting.schema as z.ZodType).parse(undefined)
    const text =
      typeof value === 'boolean'
        ? value
          ? 'on'
          : 'off'
        : value === undefined || (Array.isArray(value) && value.length === 0)
          ? 'none'
          : String(value)
    return { flag: `--${name}`, env: setting.env, default: text, bare: 'boolean' in setting }
  })
}

/** A setting that failed validation: its message is the one line printed at exit. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ConfigError'
  }
}

/** The defaults, as `loadConfig([], {})` gives them. */
export function defaultConfig(): Config {
  return loadConfig([], {})
}

/**
 * Reads flags (`--port 8080` or `--port=8080`) and ROLLCALL_ variables, flags first.
 * Throws ConfigError naming the first bad setting.
 */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): Config {
  // A setting marked `boolean` is a bare flag (`--insecure`); its variable says on or off.
  const options = Object.fromEntries(
    Object.entries(SETTINGS).map(([name, s]) => [name, { type: 'boolean' in s ? ('boolean' as const) : ('string' as const) }]),
  ) as Record<SettingName, { type: 'string' | 'boolean' }>
  let flags: Record<string, string | undefined>
  try {
    const values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values
    flags = Object.fromEntries(Object.entries(values).map(([k, v]) => [k, v === true ? 'on' : (v as string)]))
  } catch (err) {
    throw new ConfigError((err as Error).message.split('\n')[0] as string)
  }
  const out: Record<string, unknown> = {}
  for (const [name, setting] of Object.entries(SETTINGS) as Array<[SettingName, Settings[SettingName]]>) {
    const raw = flags[name] ?? env[setting.env]
    const result = (setting.schema as z.ZodType).safeParse(raw === '' ? undefined : raw)
    if (!result.success) {
      const issue = result.error.issues[0]
      throw new ConfigError(`invalid --${name} (${setting.env}=${JSON.stringify(raw)}): ${issue?.message ?? 'invalid'}`)
    }
    out[name.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase())] = result.data
  }
  return out as unknown as Config
}
