import type { ChangeOp, Instance } from '../../client-sdk/protocol.js'

/**
 * One registry change: a registration, an update, a status or health transition, or a
 * removal. `frame` is the watch message, serialized once when the change is made, so the
 * fan-out sends the same string to every subscriber and the store keeps it for resume.
 */
export interface Change {
  readonly revision: number
  readonly service: string
  readonly op: ChangeOp
  readonly instance: Instance
  readonly frame: string
}

export function makeChange(revision: number, op: ChangeOp, instance: Instance): Change {
  const frame = JSON.stringify({ type: 'change', revision, service: instance.service, op, instance })
  return { revision, service: instance.service, op, instance, frame }
}
