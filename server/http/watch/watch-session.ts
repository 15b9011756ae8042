import type { RawData, WebSocket } from 'ws'
import type { ErrorCode } from '../../../client-sdk/protocol.js'
import { ClientMessage, MAX_CLIENT_FRAME_BYTES, CLOSE_SLOW_CONSUMER } from '../../../client-sdk/protocol.js'
import { fromZod } from '../errors.js'
import type { WatchHub } from './watch-hub.js'

type Subscribe = Extract<ClientMessage, { type: 'subscribe' }>

const TEXT = { binary: false } as const
const OPEN = 1

/**
 * One watch connection: its subscriptions, and the revision it has been brought up to
 * (`cursor`). Every message it is sent carries a revision above the cursor, so the
 * client sees changes in strictly increasing order with none repeated.
 *
 * Client messages are handled one at a time, in order: a subscribe that needs a snapshot
 * waits for the registry to settle, and the next message waits for it.
 */
export class WatchSession {
  /** Who is on the other end (a token id once auth exists), for closing by owner. */
  readonly label: string | undefined
  /** What this session is subscribed to: service names and/or "*". */
  readonly selectors = new Set<string>()
  /** The newest revision this session has been sent or brought up to; -1 before any. */
  cursor = -1
  readonly #hub: WatchHub
  readonly #socket: WebSocket
  #queue: Promise<void> = Promise.resolve()
  #alive = true
  #closed = false
  /** Bytes of the last snapshot, allowed on top of the buffer bound while it drains. */
  #snapshotBytes = 0

  constructor(hub: WatchHub, socket: WebSocket, label?: string) {
    this.#hub = hub
    this.#socket = socket
    this.label = label
    socket.on('message', (data, isBinary) => this.#receive(data, isBinary))
    socket.on('pong', () => {
      this.#alive = true
    })
    socket.once('close', () => {
      this.#closed = true
    })
  }

  /** Sends a change frame if it is above the cursor. Returns whether it was sent. */
  deliver(revision: number, frame: Buffer): boolean {
    if (revision <= this.cursor || this.#closed) return false
    this.cursor = revision
    return this.#send(frame)
  }

  /** A protocol ping; a peer that did not answer the previous one is dropped. */
  heartbeat(): void {
    if (this.#closed) return
    if (!this.#alive) {
      this.#closed = true
      this.#hub.release(this)
      this.#socket.terminate()
      return
    }
    this.#alive = false
    if (this.#socket.readyState === OPEN) this.#socket.ping()
  }

  /** Closes the connection with `code`; nothing more is sent to it. */
  close(code: number, reason: string): void {
    if (this.#closed) return
    this.#closed = true
    this.#hub.release(this)
    this.#socket.close(code, reason)
  }

  #send(frame: Buffer | string): boolean {
    const socket = this.#socket
    if (socket.readyState !== OPEN) return false
    socket.send(frame, TEXT)
    // A consumer that does not read would make our memory grow: past the bound, it goes,
    // and resumes later with `since`. A snapshot may exceed the bound on its own; its
    // allowance lasts until the buffer has drained below the bound once.
    const buffered = socket.bufferedAmount
    if (buffered <= this.#hub.maxBufferedBytes) this.#snapshotBytes = 0
    else if (buffered > this.#hub.maxBufferedBytes + this.#snapshotBytes) {
      this.#hub.events.onSlowConsumer?.()
      this.close(CLOSE_SLOW_CONSUMER, 'slow consumer: reconnect and resume with since')
    }
    return true
  }

  #error(code: ErrorCode, message: string): void {
    this.#send(JSON.stringify({ type: 'error', error: { code, message } }))
  }

  #receive(data: RawData, isBinary: boolean): void {
    if (this.#closed) return
    if (isBinary) return this.#error('VALIDATION_FAILED', 'frame: must be a text frame holding JSON')
    const bytes = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : data.byteLength
    if (bytes > MAX_CLIENT_FRAME_BYTES) {
      return this.#error('PAYLOAD_TOO_LARGE', `frame: larger than the limit of ${MAX_CLIENT_FRAME_BYTES} bytes`)
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(Array.isArray(data) ? Buffer.concat(data).toString() : Buffer.from(data as Buffer).toString())
    } catch {
      return this.#error('VALIDATION_FAILED', 'frame: not valid JSON')
    }
    const result = ClientMessage.safeParse(parsed)
    if (!result.success) {
      const err = fromZod(result.error, 'frame')
      return this.#error('VALIDATION_FAILED', err.message)
    }
    const message = result.data
    this.#queue = this.#queue.then(() => this.#handle(message)).catch((err: unknown) => {
      this.#error('UNAVAILABLE', `cannot serve the subscription: ${(err as Error).message}`)
    })
  }

  async #handle(message: ClientMessage): Promise<void> {
    if (this.#closed) return
    switch (message.type) {
      case 'subscribe':
        return this.#subscribe(message)
      case 'unsubscribe':
        for (const selector of message.services) {
          if (this.selectors.delete(selector)) this.#hub.unindex(this, selector)
        }
        return
      case 'auth':
        // Tokens are checked at the upgrade when authentication is on; without it an
        // auth frame has nothing to do, and an SDK that always sends one is welcome.
        return
      default: {
        const never: never = message
        throw new Error(`unknown message ${String(never)}`)
      }
    }
  }

  async #subscribe(message: Subscribe): Promise<void> {
    const registry = this.#hub.registry
    const added = [...new Set(message.services)].filter((s) => !this.selectors.has(s))
    if (added.length === 0) return
    // Resume is possible only as the first subscription of a connection: replaying older
    // changes after newer ones were sent would break the order.
    if (message.since !== undefined && this.cursor < 0) {
      // Cluster mode: `since` may come from a node ahead of this one; catch up first. The
      // history is then read and adopted in one synchronous step, so no change slips between.
      if (registry.reach !== undefined) await registry.reach(message.since)
      if (this.#closed) return
      const changes = registry.changesSince(message.since)
      if (changes !== undefined) {
        this.#adopt(added)
        this.cursor = message.since
        for (const change of changes) {
          if (this.selectors.has('*') || this.selectors.has(change.service)) {
            this.deliver(change.revision, Buffer.from(change.frame))
          }
        }
        this.cursor = Math.max(this.cursor, registry.committedRevision)
        return
      }
    }
    // A snapshot is taken when memory equals the durable state, so that every change
    // above its revision is still to come through the fan-out.
    await registry.settled()
    if (this.#closed) return
    const snap = this.#hub.snapshot(added)
    this.#adopt(added)
    this.cursor = Math.max(this.cursor, snap.revision)
    this.#snapshotBytes = snap.frame.length + (this.#socket.bufferedAmount ?? 0)
    this.#send(snap.frame)
  }

  #adopt(selectors: readonly string[]): void {
    for (const selector of selectors) {
      this.selectors.add(selector)
      this.#hub.index(this, selector)
    }
  }
}
