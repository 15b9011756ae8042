/**
 * The load generator, run in its own process so it never shares a core's event loop with
 * the server it measures: autocannon with the request shape given as JSON on argv, the
 * result printed as one JSON line.
 *   kind heartbeat: PUT /v1/services/{s}/instances/{id}/heartbeat over `instances` ids
 *   kind register:  PUT .../instances/{unique id} with a small body (a new instance each)
 *   kind post:      POST /v1/services/{s}/instances with the same body
 *   kind lookup:    GET /v1/services/{s}/instances?healthy=true over `services` services
 *   kind etcd-keepalive / etcd-put: etcd's JSON gateway
 */
import autocannon from 'autocannon'

interface LoadSpec {
  url: string
  kind: 'heartbeat' | 'register' | 'post' | 'lookup' | 'etcd-keepalive' | 'etcd-put'
  seconds: number
  connections: number
  pipelining?: number
  services?: number
  instances?: number
  leases?: string[]
  tag?: string
}

const spec = JSON.parse(process.argv[2] as string) as LoadSpec
const body = JSON.stringify({ host: '10.0.0.1', port: 8080, ttlSeconds: 3600 })
let n = 0

function setupRequest(req: { method?: string; path?: string; body?: string; headers?: Record<string, string> }) {
  const i = n++
  switch (spec.kind) {
    case 'heartbeat': {
      const k = i % (spec.instances ?? 1)
      req.path = `/v1/services/svc-${k % (spec.services ?? 1)}/instances/i-${k}/heartbeat`
      return req
    }
    case 'register':
      req.path = `/v1/services/reg-${i % 100}/instances/${spec.tag ?? 'r'}-${i}`
      req.body = body
      return req
    case 'post':
      req.path = `/v1/services/reg-${i % 100}/instances`
      req.body = body
      return req
    case 'lookup':
      req.path = `/v1/services/svc-${i % (spec.services ?? 1)}/instances?healthy=true`
      return req
    case 'etcd-keepalive': {
      const leases = spec.leases ?? []
      req.body = JSON.stringify({ ID: leases[i % leases.length] })
      return req
    }
    case 'etcd-put': {
      const leases = spec.leases ?? []
      const key = Buffer.from(`/bench/${spec.tag ?? 'r'}-${i}`).toString('base64')
      req.body = JSON.stringify({ key, value: Buffer.from(body).toString('base64'), lease: leases[i % leases.length] })
      return req
    }
  }
}

const method = { heartbeat: 'PUT', register: 'PUT', post: 'POST', lookup: 'GET', 'etcd-keepalive': 'POST', 'etcd-put': 'POST' }[spec.kind]
const path = spec.kind === 'etcd-keepalive' ? '/v3/lease/keepalive' : spec.kind === 'etcd-put' ? '/v3/kv/put' : '/'
// A heartbeat or a lookup has no body, and says so: no JSON content type on an empty body.
const withBody = spec.kind !== 'heartbeat' && spec.kind !== 'lookup'
const result = await autocannon({
  url: spec.url,
  connections: spec.connections,
  pipelining: spec.pipelining ?? 1,
  duration: spec.seconds,
  requests: [{ method: method as 'GET', path, headers: withBody ? { 'content-type': 'application/json' } : {}, setupRequest: setupRequest as never }],
})
const ok = result['2xx']
console.log(
  JSON.stringify({
    rps: ok / (result.duration || spec.seconds),
    p50: result.latency.p50,
    p99: result.latency.p99,
    ok,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
  }),
)
