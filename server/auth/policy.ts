/**
 * Which scope each route needs: the one table to read when asking who may do what. Route
 * handlers hold no checks of their own; the hooks in `http-auth.ts` apply this table.
 */

/** What a route needs. */
export type Access =
  /** Anyone: liveness, readiness, the API spec and the dashboard's files, which hold nothing to protect. */
  | 'public'
  /** The `read` scope: queries, metrics. */
  | 'read'
  /** The `read` scope, or a token in the first frame when the upgrade had none. */
  | 'watch'
  /** A `register:` scope matching the route's `:service`. */
  | 'register'
  /** A `register:` scope matching each entry's service (checked once the body is parsed). */
  | 'register-batch'
  /** The `admin` scope. */
  | 'admin'

const ONE = '/v1/services/:service/instances/:id'
const LIST = '/v1/services/:service/instances'

const POLICY: Readonly<Record<string, Access>> = {
  'GET /healthz': 'public',
  'GET /readyz': 'public',
  'GET /openapi.yaml': 'public',
  // The dashboard's page and files hold no data: its script asks the API with a token.
  'GET /ui': 'public',
  'GET /ui/:file': 'public',
  'GET /metrics': 'read',
  'GET /v1/services': 'read',
  'POST /v1/heartbeats': 'register-batch',
  [`GET ${LIST}`]: 'read',
  [`POST ${LIST}`]: 'register',
  [`GET ${ONE}`]: 'read',
  [`PUT ${ONE}`]: 'register',
  [`PATCH ${ONE}`]: 'register',
  [`DELETE ${ONE}`]: 'register',
  [`PUT ${ONE}/heartbeat`]: 'register',
  'GET /v1/watch': 'watch',
  'POST /v1/tokens': 'admin',
  'GET /v1/tokens': 'admin',
  'DELETE /v1/tokens/:id': 'admin',
}

/**
 * The access `method` on the route `url` (Fastify's pattern, `/v1/services/:service/...`)
 * needs. A request no route matched is public: it gets a 404 and touches nothing. A route
 * missing from the table needs `read` to GET and `admin` for anything else, so a route
 * added without a thought for auth is closed rather than open.
 */
export function accessOf(method: string, url: string | undefined): Access {
  if (url === undefined) return 'public'
  const m = method === 'HEAD' ? 'GET' : method
  return POLICY[`${m} ${url}`] ?? (m === 'GET' ? 'read' : 'admin')
}

/** Every `METHOD url` the table names, for a test that holds it to the server's routes. */
export function policyRoutes(): string[] {
  return Object.keys(POLICY)
}
