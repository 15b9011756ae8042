import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { ZodError } from 'zod'
import type { ErrorBody, ErrorCode } from '../../client-sdk/protocol.js'
import { ERROR_CODES } from '../../client-sdk/protocol.js'
import { RegistryError } from '../registry/errors.js'

/** The HTTP status of an error code: the one place where codes meet statuses. */
export function statusOf(code: ErrorCode): number {
  return ERROR_CODES[code]
}

export function errorBody(code: ErrorCode, message: string, details?: unknown[]): ErrorBody {
  return details === undefined ? { error: { code, message } } : { error: { code, message, details } }
}

/** Where a value came from, to prefix field paths: `body`, `query`, `params`. */
export type Source = 'body' | 'query' | 'params' | 'frame'

/**
 * A ZodError as VALIDATION_FAILED, with the field path in the message
 * (`port: Too big: expected number to be <=65535`) and every issue in `details`.
 */
export function fromZod(err: ZodError, source: Source): RegistryError {
  const details = err.issues.map((issue) => ({
    path: issue.path.map(String).join('.') || source,
    message: issue.message,
  }))
  const first = details[0] as { path: string; message: string }
  const more = details.length > 1 ? ` (and ${details.length - 1} more)` : ''
  return new RegistryError('VALIDATION_FAILED', `${first.path}: ${first.message}${more}`, details)
}

/** Parses `value` with `schema`, throwing VALIDATION_FAILED that names the field. */
export function parseWith<T>(
  schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: ZodError } },
  value: unknown,
  source: Source,
): T {
  const result = schema.safeParse(value)
  if (result.success) return result.data
  throw fromZod(result.error, source)
}

function classify(err: FastifyError | Error): RegistryError | undefined {
  if (err instanceof RegistryError) return err
  if (err instanceof ZodError) return fromZod(err, 'body')
  const fe = err as FastifyError
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new RegistryError('PAYLOAD_TOO_LARGE', 'body: larger than the limit of 65536 bytes')
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new RegistryError('VALIDATION_FAILED', 'content-type: must be application/json')
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new RegistryError('VALIDATION_FAILED', 'body: must not be empty')
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new RegistryError('VALIDATION_FAILED', `body: not valid JSON (${fe.message})`)
    case 'FST_ERR_RATE_LIMITED':
      return new RegistryError('RATE_LIMITED', fe.message)
    // The router's refusals, which reach here through Fastify's `frameworkErrors` option.
    case 'FST_ERR_BAD_URL':
      return new RegistryError('VALIDATION_FAILED', 'path: not a valid URL (bad percent-encoding)')
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new RegistryError('VALIDATION_FAILED', 'path: a service name or instance id is longer than 128 characters')
  }
  if (fe.statusCode === 413) return new RegistryError('PAYLOAD_TOO_LARGE', fe.message)
  if (fe.statusCode === 429) return new RegistryError('RATE_LIMITED', fe.message)
  if (err instanceof SyntaxError || (fe.statusCode !== undefined && fe.statusCode >= 400 && fe.statusCode < 500)) {
    // secure-json-parse's prototype-poisoning refusals and the parser's syntax errors land here.
    return new RegistryError('VALIDATION_FAILED', `body: ${fe.message}`)
  }
  return undefined
}

/**
 * Fastify's error handler: every error leaves in the one shape. Anything unknown becomes
 * INTERNAL, logged with its stack and request id: a bug to fix.
 */
export function handleError(err: FastifyError | Error, request: FastifyRequest, reply: FastifyReply): void {
  const known = classify(err)
  if (known === undefined) {
    request.log.error({ err }, 'unhandled error')
    void reply.code(500).send(errorBody('INTERNAL', 'internal error; the server log has the details'))
    return
  }
  const status = statusOf(known.code)
  if (status >= 500) request.log.error({ err: known }, known.message)
  void reply.code(status).send(errorBody(known.code, known.message, known.details))
}

/**
 * Fastify's `clientErrorHandler`: a request that Node's HTTP parser refused (raw non-ASCII
 * or control characters in the path, a malformed header) never reaches the router, so it
 * is answered here, on the socket, in the one shape. A timed-out or reset one gets nothing.
 */
export function handleClientError(err: Error & { code?: string }, socket: Duplex): void {
  if (socket.destroyed || !socket.writable) return
  if (err.code === 'ECONNRESET' || err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    socket.destroy()
    return
  }
  const [code, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? (['PAYLOAD_TOO_LARGE', 'headers: larger than the limit'] as const)
      : err.code === 'HPE_INVALID_URL'
        ? (['VALIDATION_FAILED', 'path: not a valid request target (encode non-ASCII characters)'] as const)
        : (['VALIDATION_FAILED', `request: not valid HTTP (${err.code ?? err.message})`] as const)
  const status = statusOf(code)
  const text = JSON.stringify(errorBody(code, message))
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  )
}

/** Unknown routes answer NOT_FOUND in the same shape. */
export function handleNotFound(request: FastifyRequest, reply: FastifyReply): void {
  void reply.code(404).send(errorBody('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`))
}
