/**
 * The SDK's errors: one base class, a readable `code` from a closed list, the instance an
 * error concerns (when there is one) and a `retryable` flag. Retries and breakers decide on
 * `code` and `retryable`, never on message text (as etcd3 marks recoverable errors).
 *
 * @example
 * ```ts
 * try {
 *   await orders.fetch('/v1/items')
 * } catch (err) {
 *   if (err instanceof RollcallError && err.code === 'NO_INSTANCE_AVAILABLE') serveFromCache()
 *   else throw err
 * }
 * ```
 */
import type { ErrorCode } from './protocol.js'

/** Every code an SDK error can carry, besides the server's own codes (see {@link RegistryApiError}). */
export const SDK_ERROR_CODES = [
  'NO_INSTANCE_AVAILABLE',
  'REQUEST_TIMEOUT',
  'CONNECTION_FAILED',
  'UPSTREAM_ERROR',
  'REGISTRY_UNAVAILABLE',
  'RETRY_BUDGET_EXHAUSTED',
  'CLIENT_CLOSED',
] as const
export type SdkErrorCode = (typeof SDK_ERROR_CODES)[number]

/** An SDK code, or the code of an error answer from the registry server. */
export type RollcallErrorCode = SdkErrorCode | ErrorCode

/** The instance an error concerns: enough to say which one in a log line. */
export interface InstanceRef {
  service: string
  id: string
  host: string
  port: number
}

/** What every error class takes besides its own fields. */
export interface RollcallErrorOptions {
  instance?: InstanceRef | undefined
  cause?: unknown
}

/** `orders/o-1 (10.0.0.7:8080)`. IPv6 hosts get brackets so the port stays readable. */
export function describeInstance(i: InstanceRef): string {
  const host = i.host.includes(':') && !i.host.startsWith('[') ? `[${i.host}]` : i.host
  return `${i.service}/${i.id} (${host}:${i.port})`
}

/** Copies only the identifying fields, so an error never pins a live endpoint record. */
function refOf(i: InstanceRef | undefined): InstanceRef | undefined {
  return i === undefined ? undefined : { service: i.service, id: i.id, host: i.host, port: i.port }
}

/** The base of every error the SDK throws. */
export class RollcallError extends Error {
  readonly code: RollcallErrorCode
  /** Whether the same request may succeed if sent again, to another instance or later. */
  readonly retryable: boolean
  /** The instance the error concerns, when there is one. */
  readonly instance: InstanceRef | undefined

  constructor(code: RollcallErrorCode, message: string, retryable: boolean, options: RollcallErrorOptions = {}) {
    const instance = refOf(options.instance)
    super(instance === undefined ? message : `${message} [${describeInstance(instance)}]`, {
      cause: options.cause,
    })
    this.name = 'RollcallError'
    this.code = code
    this.retryable = retryable
    this.instance = instance
  }
}

/**
 * No instance could be picked: the service is unknown, empty, or none of its instances
 * takes traffic (and the panic threshold did not apply). Not retryable: another attempt
 * right away would pick from the same empty set.
 */
export class NoInstanceAvailableError extends RollcallError {
  readonly service: string
  constructor(service: string, detail?: string, options: RollcallErrorOptions = {}) {
    super(
      'NO_INSTANCE_AVAILABLE',
      `no instance of ${service} is available${detail === undefined ? '' : `: ${detail}`}`,
      false,
      options,
    )
    this.name = 'NoInstanceAvailableError'
    this.service = service
  }
}

/** A request got no answer within its timeout. Retryable (for idempotent requests). */
export class RequestTimeoutError extends RollcallError {
  readonly timeoutMs: number
  constructor(timeoutMs: number, options: RollcallErrorOptions = {}) {
    super('REQUEST_TIMEOUT', `no answer within ${timeoutMs} ms`, true, options)
    this.name = 'RequestTimeoutError'
    this.timeoutMs = timeoutMs
  }
}

/** The instance could not be reached: refused, reset, DNS... Retryable on another instance. */
export class ConnectionFailedError extends RollcallError {
  constructor(message: string, options: RollcallErrorOptions = {}) {
    super('CONNECTION_FAILED', message, true, options)
    this.name = 'ConnectionFailedError'
  }
}

/**
 * Whether an HTTP status from an upstream is worth another attempt: 429 and the 5xx that
 * describe the instance's state rather than the request (501 and 505 never change).
 */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status <= 599 && status !== 501 && status !== 505)
}

/** An instance answered with an error status. Retryable per {@link isRetryableStatus}. */
export class UpstreamError extends RollcallError {
  readonly status: number
  constructor(status: number, options: RollcallErrorOptions = {}) {
    super('UPSTREAM_ERROR', `upstream answered ${status}`, isRetryableStatus(status), options)
    this.name = 'UpstreamError'
    this.status = status
  }
}

/** The registry server could not be reached. Retryable: the SDK backs off and tries again. */
export class RegistryUnavailableError extends RollcallError {
  readonly url: string
  constructor(url: string, options: RollcallErrorOptions = {}) {
    super('REGISTRY_UNAVAILABLE', `registry ${url} is unavailable`, true, options)
    this.name = 'RegistryUnavailableError'
    this.url = url
  }
}

/**
 * The registry answered with its error shape `{"error":{code,message,details?}}`. `code`
 * is the server's code (`VALIDATION_FAILED`, `INSTANCE_NOT_FOUND`...).
 */
export class RegistryApiError extends RollcallError {
  readonly status: number
  readonly details: unknown[] | undefined
  constructor(
    status: number,
    code: ErrorCode,
    message: string,
    details?: unknown[],
    options: RollcallErrorOptions = {},
  ) {
    super(code, message, status === 429 || status >= 500, options)
    this.name = 'RegistryApiError'
    this.status = status
    this.details = details
  }
}

/**
 * A retry was due but the retry budget had none left: the error of the last attempt is
 * the `cause`. Not retryable, by definition.
 */
export class RetryBudgetExhaustedError extends RollcallError {
  constructor(options: RollcallErrorOptions = {}) {
    super('RETRY_BUDGET_EXHAUSTED', 'retry budget exhausted', false, options)
    this.name = 'RetryBudgetExhaustedError'
  }
}

/** The client was closed; nothing more can be sent through it. */
export class ClientClosedError extends RollcallError {
  constructor() {
    super('CLIENT_CLOSED', 'the rollcall client is closed', false)
    this.name = 'ClientClosedError'
  }
}

/** Type guard for any SDK error. */
export function isRollcallError(err: unknown): err is RollcallError {
  return err instanceof RollcallError
}
