import type { DestinationStream, Logger } from 'pino'
import { pino } from 'pino'

/**
 * What the server's logger never writes: credentials in headers, wherever a logged object
 * carries them, and token fields. Our own lines never log headers or bodies; this is the
 * net under a future `log.info({ req })`.
 */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'request.headers.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'token',
  '*.token',
  'adminToken',
  '*.adminToken',
]

/**
 * The server's logger: JSON lines at `level`, with {@link REDACTED_PATHS} censored. Tests
 * pass a `destination` to read what it writes.
 */
export function serverLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } }
  return destination === undefined ? pino(options) : pino(options, destination)
}

/** Query parameters that would hold a credential if a client put one in a URL. */
const SECRET_PARAM = /([?&](?:access_token|token|auth|authorization|api_key|apikey|key|secret)=)[^&#]*/gi

/**
 * A request target fit for the log: tokens are never taken from URLs, but a client may
 * still send one there, and the access log must not keep it.
 */
export function redactUrl(url: string): string {
  return url.includes('?') ? url.replace(SECRET_PARAM, '$1[redacted]') : url
}
