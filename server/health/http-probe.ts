import http from 'node:http'
import https from 'node:https'
import type { ProbeOutcome } from '../registry/registry.js'
import { elapsedMs, errorLabel } from './outcome.js'

/** What an HTTP check GETs: `http(s)://host:port/path`. `host` is bare (no IPv6 brackets). */
export interface HttpProbeTarget {
  secure: boolean
  host: string
  port: number
  path: string
}

/**
 * How much of a response body is read (and thrown away) before the socket is closed. A
 * health endpoint's body is small; this only lets a well-behaved target finish writing
 * it, while a streaming or huge body cannot hold the probe.
 */
const MAX_DRAIN_BYTES = 64 * 1024

const HEADERS = { 'user-agent': 'rollcall-health-check', accept: '*/*', connection: 'close' }

/**
 * One HTTP check: `GET http(s)://host:port/path`. A 2xx or 3xx status passes; redirects
 * are not followed (node's client never follows them), as in Consul and Envoy.
 *
 * - `timeoutMs` covers DNS, connect, TLS and the response headers: a target that accepts
 *   but never answers fails with `timeout`. The outcome is decided at the headers.
 * - The body is never read into memory or logs: up to 64 KiB is drained and discarded
 *   (within the same deadline), then the socket is destroyed.
 * - Every probe has its own socket (`agent: false`, `Connection: close`), destroyed and
 *   closed before the promise resolves, so nothing is pooled or left open.
 * - HTTPS certificates are NOT verified (as Consul's `tls_skip_verify`): instances commonly
 *   serve self-signed certificates on internal addresses, and a check asks "does it
 *   answer", not "is it who it claims to be". No credentials are sent.
 *
 * Never rejects: an abort of `signal` resolves with `error: "aborted"`.
 */
export function probeHttp(target: HttpProbeTarget, timeoutMs: number, signal: AbortSignal): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const start = performance.now()
    let outcome: ProbeOutcome | undefined
    let done = false
    const decide = (o: ProbeOutcome) => {
      outcome ??= o
    }
    const fail = (error: string) => decide({ ok: false, error, durationMs: elapsedMs(start) })

    const options: http.RequestOptions = {
      host: target.host,
      port: target.port,
      path: target.path,
      method: 'GET',
      headers: HEADERS,
      agent: false,
    }
    const req = target.secure
      ? https.request({ ...options, rejectUnauthorized: false })
      : http.request(options)

    // Resolves only once the socket is closed, so that a probe awaited is a probe gone.
    let closed = false
    const settle = () => {
      if (done && closed) resolve(outcome ?? { ok: false, error: 'error', durationMs: elapsedMs(start) })
    }
    req.on('close', () => {
      closed = true
      settle()
    })
    const end = () => {
      if (done) return
      done = true
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
      req.destroy()
      settle()
    }
    const onAbort = () => {
      fail('aborted')
      end()
    }
    const timer = setTimeout(() => {
      fail('timeout')
      end()
    }, timeoutMs)

    // Stays attached: destroying the request can still emit an error (socket hang up).
    req.on('error', (err) => {
      fail(errorLabel(err))
      end()
    })
    req.on('response', (res) => {
      const statusCode = res.statusCode ?? 0
      const durationMs = elapsedMs(start)
      if (statusCode >= 200 && statusCode < 400) decide({ ok: true, statusCode, durationMs })
      else decide({ ok: false, statusCode, error: `status ${statusCode}`, durationMs })
      // A body cut short by end() errors with "aborted"; the outcome is already decided.
      res.on('error', () => undefined)
      let drained = 0
      res.on('data', (chunk: Buffer) => {
        drained += chunk.length
        if (drained > MAX_DRAIN_BYTES) end()
      })
      res.on('end', end)
    })

    if (signal.aborted) onAbort()
    else {
      signal.addEventListener('abort', onAbort, { once: true })
      req.end()
    }
  })
}
