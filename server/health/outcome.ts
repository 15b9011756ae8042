/**
 * Small helpers shared by the probes to describe an outcome: a log-safe failure label and
 * a duration.
 */

/**
 * A short, log-safe label for why a probe failed: the system error code when there is one
 * (`ECONNREFUSED`, `ENOTFOUND`, `ECONNRESET`...), else the error's name. Never a message
 * or a stack, which could carry text from the target.
 */
export function errorLabel(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    const code = (err as { code?: unknown }).code
    if (typeof code === 'string' && code.length > 0 && code.length <= 64) return code
    const name = (err as { name?: unknown }).name
    if (typeof name === 'string' && name.length > 0 && name.length <= 64) return name
  }
  return 'error'
}

/** Milliseconds since `start` (a `performance.now()` reading), to 0.1 ms. */
export function elapsedMs(start: number): number {
  return Math.round((performance.now() - start) * 10) / 10
}
