import type { CheckSpec, Scheme } from '../../client-sdk/protocol.js'
import type { ProbeOutcome } from '../registry/registry.js'
import { probeHttp } from './http-probe.js'
import { probeTcp } from './tcp-probe.js'

/** Where a probe goes: the instance's address as it registered it. */
export interface ProbeTarget {
  host: string
  port: number
  scheme: Scheme
}

/**
 * Runs one probe. Never rejects: every failure, the timeout and an abort included, is an
 * outcome with `ok: false` and a short `error`.
 */
export type Probe = (target: ProbeTarget, check: CheckSpec, signal: AbortSignal) => Promise<ProbeOutcome>

/**
 * The real probe: an HTTP(S) GET for `type: "http"` (HTTPS when the instance's scheme is
 * `https`, plain HTTP for every other scheme), a TCP connect for `type: "tcp"`.
 */
export const probe: Probe = (target, check, signal) => {
  const timeoutMs = check.timeoutSeconds * 1000
  const host = unbracket(target.host)
  switch (check.type) {
    case 'http':
      return probeHttp(
        { secure: target.scheme === 'https', host, port: target.port, path: check.path },
        timeoutMs,
        signal,
      )
    case 'tcp':
      return probeTcp({ host, port: target.port }, timeoutMs, signal)
    default: {
      const never: never = check
      throw new Error(`unknown check type ${JSON.stringify(never)}`)
    }
  }
}

/** `[::1]` -> `::1`: node's clients want IPv6 literals bare and add brackets themselves. */
function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
}
