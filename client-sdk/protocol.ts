/**
 * The wire protocol of rollcall: every schema that crosses the network, their TypeScript
 * types and the closed catalogue of error codes. Both the server and the SDK import this
 * file; it imports nothing but zod.
 *
 * @example
 * ```ts
 * import { RegisterBody } from 'rollcall/client'
 * const body = RegisterBody.parse({ host: '10.0.0.7', port: 8080 })
 * ```
 */
import { z } from 'zod'

/** Service names and instance ids: `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

/** A service name or an instance id. */
export const Name = z
  .string()
  .regex(NAME_PATTERN, { error: 'must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$' })

/** Set by the instance itself or by an operator. */
export const InstanceStatus = z.enum(['starting', 'up', 'draining', 'out_of_service'])
export type InstanceStatus = z.infer<typeof InstanceStatus>

/** Set by the server only: from the TTL lease and the active check. */
export const Health = z.enum(['passing', 'critical', 'unknown'])
export type Health = z.infer<typeof Health>

export const Scheme = z.enum(['http', 'https', 'grpc', 'tcp'])
export type Scheme = z.infer<typeof Scheme>

const Seconds = (min: number, max: number) => z.int().min(min).max(max)

const checkTiming = {
  intervalSeconds: Seconds(1, 3600).default(10),
  timeoutSeconds: Seconds(1, 300).default(2),
  healthyThreshold: Seconds(1, 100).default(2),
  unhealthyThreshold: Seconds(1, 100).default(3),
}

/** An active HTTP check: GET scheme://host:port/path, 2xx/3xx within the timeout passes. */
export const HttpCheck = z.strictObject({
  type: z.literal('http'),
  path: z
    .string()
    .max(1024)
    .regex(/^\/[\x21-\x7e]*$/, { error: 'must start with / and hold printable ASCII only' })
    .default('/'),
  ...checkTiming,
})
/** An active TCP check: a connect within the timeout passes. */
export const TcpCheck = z.strictObject({ type: z.literal('tcp'), ...checkTiming })

export const CheckSpec = z
  .discriminatedUnion('type', [HttpCheck, TcpCheck])
  .refine((c) => c.timeoutSeconds <= c.intervalSeconds, {
    error: 'timeoutSeconds must be <= intervalSeconds',
    path: ['timeoutSeconds'],
  })
export type CheckSpec = z.output<typeof CheckSpec>
export type CheckSpecInput = z.input<typeof CheckSpec>

const Tags = z.array(z.string().min(1).max(64)).max(32)

/** Metadata: string to string, at most 64 keys and 8 KiB of keys and values together. */
const Metadata = z
  .record(z.string().min(1).max(128), z.string().max(8192))
  .refine((m) => Object.keys(m).length <= 64, { error: 'at most 64 keys' })
  .refine(
    (m) => {
      let size = 0
      for (const k in m) size += k.length + (m[k] as string).length
      return size <= 8192
    },
    { error: 'keys and values together must be <= 8192 characters' },
  )

/** Hostname or IP literal. Rejects whitespace, control characters, paths and URLs. */
const Host = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9._:%\[\]-]+$/, { error: 'must be a hostname or an IP address' })

const Label = z.string().max(64)

/** Body of PUT/POST /v1/services/{service}/instances[/{id}]. */
export const RegisterBody = z.strictObject({
  host: Host,
  port: z.int().min(1).max(65535),
  scheme: Scheme.default('http'),
  status: InstanceStatus.default('up'),
  weight: z.int().min(0).max(1000).default(100),
  zone: Label.optional(),
  version: Label.optional(),
  tags: Tags.default([]),
  metadata: Metadata.default({}),
  ttlSeconds: z.int().min(1).max(3600).default(30),
  deregisterAfterSeconds: z.int().min(0).max(86400).default(60),
  check: CheckSpec.optional(),
})
export type RegisterBody = z.output<typeof RegisterBody>
export type RegisterInput = z.input<typeof RegisterBody>

/** Body of PATCH /v1/services/{service}/instances/{id}. Tags and metadata are replaced whole. */
export const PatchBody = z
  .strictObject({
    status: InstanceStatus.optional(),
    weight: z.int().min(0).max(1000).optional(),
    tags: Tags.optional(),
    metadata: Metadata.optional(),
  })
  .refine((p) => Object.keys(p).length > 0, { error: 'at least one of status, weight, tags, metadata' })
export type PatchBody = z.output<typeof PatchBody>

/** The last result of an instance's active check. */
export const CheckResult = z.object({
  ok: z.boolean(),
  /** HTTP status code of an HTTP check that got an answer. */
  statusCode: z.int().optional(),
  /** Why it failed: `timeout`, `ECONNREFUSED`, `status 500`... */
  error: z.string().optional(),
  durationMs: z.number(),
  at: z.string(),
})
export type CheckResult = z.infer<typeof CheckResult>

/** An instance as the API shows it. */
export const Instance = z.object({
  service: z.string(),
  id: z.string(),
  host: z.string(),
  port: z.int(),
  scheme: Scheme,
  status: InstanceStatus,
  health: Health,
  weight: z.int(),
  zone: z.string().optional(),
  version: z.string().optional(),
  tags: z.array(z.string()),
  metadata: z.record(z.string(), z.string()),
  ttlSeconds: z.int(),
  deregisterAfterSeconds: z.int(),
  check: CheckSpec.optional(),
  lastCheck: CheckResult.optional(),
  registeredAt: z.string(),
  updatedAt: z.string(),
  lastHeartbeatAt: z.string(),
  expiresAt: z.string(),
  revision: z.int(),
})
export type Instance = z.infer<typeof Instance>

/** `status == up && health == passing`: only routable instances take traffic. */
export function isRoutable(i: { status: InstanceStatus; health: Health }): boolean {
  return i.status === 'up' && i.health === 'passing'
}

/** Answer of PUT .../heartbeat. */
export const HeartbeatResult = z.object({
  expiresAt: z.string(),
  status: InstanceStatus,
  health: Health,
})
export type HeartbeatResult = z.infer<typeof HeartbeatResult>

/** Most instances renewed in one POST /v1/heartbeats. */
export const MAX_BATCH_HEARTBEATS = 1000

export const BatchHeartbeatBody = z.strictObject({
  instances: z
    .array(z.strictObject({ service: Name, id: Name }))
    .min(1)
    .max(MAX_BATCH_HEARTBEATS),
})
export type BatchHeartbeatBody = z.infer<typeof BatchHeartbeatBody>

/** The closed list of error codes, with the HTTP status each one maps to. */
export const ERROR_CODES = {
  VALIDATION_FAILED: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  INSTANCE_NOT_FOUND: 404,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  UNAVAILABLE: 503,
  INTERNAL: 500,
} as const
export type ErrorCode = keyof typeof ERROR_CODES
export const ErrorCode = z.enum(Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]])

/** The one error shape of every 4xx and 5xx answer, and of WebSocket error messages. */
export const ErrorBody = z.object({
  error: z.object({
    code: ErrorCode,
    message: z.string(),
    details: z.array(z.unknown()).optional(),
  }),
})
export type ErrorBody = z.infer<typeof ErrorBody>

export const BatchHeartbeatResult = z.discriminatedUnion('ok', [
  z.object({ service: z.string(), id: z.string(), ok: z.literal(true), ...HeartbeatResult.shape }),
  z.object({ service: z.string(), id: z.string(), ok: z.literal(false), error: ErrorBody.shape.error }),
])
export const BatchHeartbeatResponse = z.object({ results: z.array(BatchHeartbeatResult) })
export type BatchHeartbeatResponse = z.infer<typeof BatchHeartbeatResponse>

export const ServiceSummary = z.object({
  name: z.string(),
  instances: z.int(),
  routable: z.int(),
  zones: z.array(z.string()),
  revision: z.int(),
})
export type ServiceSummary = z.infer<typeof ServiceSummary>

export const ServicesResponse = z.object({ revision: z.int(), services: z.array(ServiceSummary) })
export type ServicesResponse = z.infer<typeof ServicesResponse>

export const InstancesResponse = z.object({
  service: z.string(),
  revision: z.int(),
  instances: z.array(Instance),
})
export type InstancesResponse = z.infer<typeof InstancesResponse>

// ---------------------------------------------------------------------------------------
// WebSocket watch (GET /v1/watch)

/** Largest client frame the server reads; larger frames are refused. */
export const MAX_CLIENT_FRAME_BYTES = 64 * 1024
/** Most services named in one subscribe or unsubscribe. */
export const MAX_SUBSCRIBE_SERVICES = 1024

const ServiceSelector = z.union([z.literal('*'), Name])

export const SubscribeMessage = z.strictObject({
  type: z.literal('subscribe'),
  services: z.array(ServiceSelector).min(1).max(MAX_SUBSCRIBE_SERVICES),
  since: z.int().min(0).optional(),
})
export const UnsubscribeMessage = z.strictObject({
  type: z.literal('unsubscribe'),
  services: z.array(ServiceSelector).min(1).max(MAX_SUBSCRIBE_SERVICES),
})
/** A token sent as the first frame instead of an Authorization header. */
export const AuthMessage = z.strictObject({ type: z.literal('auth'), token: z.string().min(1).max(512) })

export const ClientMessage = z.discriminatedUnion('type', [SubscribeMessage, UnsubscribeMessage, AuthMessage])
export type ClientMessage = z.infer<typeof ClientMessage>

export const SnapshotMessage = z.object({
  type: z.literal('snapshot'),
  revision: z.int(),
  services: z.record(z.string(), z.array(Instance)),
})
export type SnapshotMessage = z.infer<typeof SnapshotMessage>

export const ChangeOp = z.enum(['upsert', 'delete'])
export type ChangeOp = z.infer<typeof ChangeOp>

export const ChangeMessage = z.object({
  type: z.literal('change'),
  revision: z.int(),
  service: z.string(),
  op: ChangeOp,
  instance: Instance,
})
export type ChangeMessage = z.infer<typeof ChangeMessage>

export const ErrorMessage = z.object({ type: z.literal('error'), error: ErrorBody.shape.error })
export type ErrorMessage = z.infer<typeof ErrorMessage>

export const ServerMessage = z.discriminatedUnion('type', [SnapshotMessage, ChangeMessage, ErrorMessage])
export type ServerMessage = z.infer<typeof ServerMessage>

/** Close code for a consumer whose send buffer passed the server's bound. */
export const CLOSE_SLOW_CONSUMER = 4008
/** Close code for a socket whose token was revoked or is not allowed to watch. */
export const CLOSE_UNAUTHORIZED = 4001

// ---------------------------------------------------------------------------------------
// Tokens (POST/GET /v1/tokens, DELETE /v1/tokens/{id}): admin only.

/**
 * A scope a token grants: `read` (queries and the watch), `admin` (everything, tokens
 * included) or `register:<service-pattern>` (register, heartbeat, patch and deregister
 * instances of the services the pattern matches; `*` matches any run of characters, so
 * `register:team-a.*` covers `team-a.orders`, and `register:*` every service).
 */
export const SCOPE_PATTERN = /^(read|admin|register:[A-Za-z0-9*][A-Za-z0-9._*-]{0,127})$/
export const Scope = z
  .string()
  .regex(SCOPE_PATTERN, { error: 'must be read, admin or register:<service-pattern> (names with * wildcards)' })

/** Body of POST /v1/tokens. */
export const CreateTokenBody = z.strictObject({
  scopes: z.array(Scope).min(1).max(32),
  description: z.string().max(256).optional(),
  /** Seconds until the token expires; none: it never does. At most ten years. */
  ttlSeconds: z.int().min(1).max(10 * 365 * 86_400).optional(),
})
export type CreateTokenBody = z.infer<typeof CreateTokenBody>

/** A token as GET /v1/tokens lists it: never its secret. */
export const TokenInfo = z.object({
  id: z.string(),
  scopes: z.array(z.string()),
  description: z.string().optional(),
  createdAt: z.string(),
  expiresAt: z.string().optional(),
  revokedAt: z.string().optional(),
})
export type TokenInfo = z.infer<typeof TokenInfo>

/** Answer of POST /v1/tokens: the secret, shown this once. */
export const CreatedToken = z.object({
  id: z.string(),
  token: z.string(),
  scopes: z.array(z.string()),
  description: z.string().optional(),
  createdAt: z.string(),
  expiresAt: z.string().optional(),
})
export type CreatedToken = z.infer<typeof CreatedToken>

export const TokensResponse = z.object({ tokens: z.array(TokenInfo) })
export type TokensResponse = z.infer<typeof TokensResponse>
