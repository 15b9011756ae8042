import type { RawData, WebSocket } from 'ws'
import type { ErrorCode } from '../../../client-sdk/protocol.js'
import { ClientMessage, MAX_CLIENT_FRAME_BYTES, CLOSE_SLOW_CONSUMER, CLOSE_UNAUTHORIZED } from '../../../client-sdk/protocol.js'
import { fromZod } from '../errors.js'
import type { WatchHub } from './watch-hub.js'

type Subscribe = Extract<ClientMessage, { type: 'subscribe' }>

const TEXT = { binary: false } as const
const OPEN = 1

/** Close code for a token over its limit of watch connections: policy violation. */
export const CLOSE_POLICY = 1008

/**
 * How a socket that opened without credentials (auth on, no Authorization header at the
 * upgrade, no anonymous `read`) authenticates: with an `auth` frame first, within the
 * hub's `authTimeoutMs`; anything else first closes it with 4001.
 */
export interface AuthGate {
  /** The label (token id) a token stands for if it may watch, or why not. */
  authenticate(token: string): { ok: true; label: string } | { ok: false; code: ErrorCode; message: string }
}

/**
 * One watch connection: its subscriptions, and the revision it has been brought up to
 * (`cursor`). Every message it is sent carries a revision above the cursor, so the
 * client sees changes in strictly increasing order with none repeated.
 *
 * Client messages are handled one at a time, in order: a subscribe that needs a snapshot
 * waits for the registry to settle, and the next message waits for it.
 */
export class WatchSession {
  #label: string | undefined
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
  /** Set until a socket that opened without credentials authenticates in its first frame. */
  #gate: AuthGate | undefined
  #gateTimer: NodeJS.Timeout | undefined

  constructor(hub: WatchHub, socket: WebSocket, label?: string, gate?: AuthGate) {
    this.#hub = hub
    this.#socket = socket
    this.#label = label
    if (gate !== undefined) {
      this.#gate = gate
      const ms = hub.authTimeoutMs
      this.#gateTimer = setTimeout(
        () => this.#refuse('UNAUTHENTICATED', `auth: no auth frame within ${ms} ms`, CLOSE_UNAUTHORIZED),
        ms,
      )
    }
    socket.on('message', (data, isBinary) => this.#receive(data, isBinary))
    socket.on('pong', () => {
      this.#alive = true
    })
    socket.once('close', () => {
      this.#closed = true
      clearTimeout(this.#gateTimer)
    })
  }

  /** Who is on the other end (a token id), for limits and closing by owner; undefined: anonymous. */
  get label(): string | undefined {
    return this.#label
  }

  /** Called by the hub only, which keeps the count per label. */
  relabelled(label: string): void {
    this.#label = label
  }

  /** Whether the session still waits for its auth frame. */
  get awaitingAuth(): boolean {
    return this.#gate !== undefined
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
    clearTimeout(this.#gateTimer)
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

  /** An error message, then the close: the client learns why before the socket goes. */
  #refuse(code: ErrorCode, message: string, closeCode: number): void {
    if (this.#closed) return
    this.#error(code, message)
    this.close(closeCode, message.slice(0, 120))
  }

  #authenticate(token: string): void {
    const result = (this.#gate as AuthGate).authenticate(token)
    if (!result.ok) return this.#refuse(result.code, result.message, CLOSE_UNAUTHORIZED)
    if (!this.#hub.relabel(this, result.label)) {
      return this.#refuse('RATE_LIMITED', `watch: at most ${this.#hub.maxPerLabel} open watch connections per token`, CLOSE_POLICY)
    }
    this.#gate = undefined
    clearTimeout(this.#gateTimer)
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
    if (this.#gate !== undefined) {
      if (message.type === 'auth') return this.#authenticate(message.token)
      return this.#refuse('UNAUTHENTICATED', 'auth: send {"type":"auth","token":"..."} as the first frame', CLOSE_UNAUTHORIZED)
    }
    switch (message.type) {
      case 'subscribe':
        return this.#subscribe(message)
      case 'unsubscribe':
        for (const selector of message.services) {
          if (this.selectors.delete(selector)) this.#hub.unindex(this, selector)
        }
        return
      case 'auth':
        // The token came at the upgrade, the session is already authenticated, or auth
        // is off: an auth frame has nothing to do, and an SDK that always sends one is welcome.
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
