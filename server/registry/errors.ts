import type { ErrorCode } from '../../client-sdk/protocol.js'

/**
 * An error of the domain: a code from the closed catalogue in the protocol and a message
 * for people. It never carries an HTTP status; `server/http/errors.ts` maps code to status.
 */
export class RegistryError extends Error {
  readonly code: ErrorCode
  readonly details: unknown[] | undefined
  constructor(code: ErrorCode, message: string, details?: unknown[]) {
    super(message)
    this.name = 'RegistryError'
    this.code = code
    this.details = details
  }
}

export function instanceNotFound(service: string, id: string): RegistryError {
  return new RegistryError('INSTANCE_NOT_FOUND', `instance ${service}/${id} is not registered`)
}
