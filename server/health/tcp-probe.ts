import net from 'node:net'
import type { ProbeOutcome } from '../registry/registry.js'
import { elapsedMs, errorLabel } from './outcome.js'

/** What a TCP check connects to. `host` is bare (no IPv6 brackets). */
export interface TcpProbeTarget {
  host: string
  port: number
}

/**
 * One TCP check: a connect within `timeoutMs` (DNS included) passes, and the socket is
 * closed at once without sending anything; the promise resolves once it is closed. Never rejects: a refused connect fails with
 * `ECONNREFUSED`, a black-holed one with `timeout`, an abort of `signal` with `aborted`.
 */
export function probeTcp(target: TcpProbeTarget, timeoutMs: number, signal: AbortSignal): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const start = performance.now()
    let done = false
    const socket = net.connect({ host: target.host, port: target.port })
    let outcome: ProbeOutcome | undefined
    // Resolves only once the socket is closed, so that a probe awaited is a probe gone.
    let closed = false
    socket.once('close', () => {
      closed = true
      if (outcome !== undefined) resolve(outcome)
    })
    const end = (o: ProbeOutcome) => {
      if (done) return
      done = true
      outcome = o
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
      socket.destroy()
      if (closed) resolve(o)
    }
    const fail = (error: string) => end({ ok: false, error, durationMs: elapsedMs(start) })
    const onAbort = () => fail('aborted')
    const timer = setTimeout(() => fail('timeout'), timeoutMs)

    socket.once('connect', () => end({ ok: true, durationMs: elapsedMs(start) }))
    // Stays attached: an error can follow the destroy of a half-open socket.
    socket.on('error', (err) => fail(errorLabel(err)))

    if (signal.aborted) onAbort()
    else signal.addEventListener('abort', onAbort, { once: true })
  })
}
