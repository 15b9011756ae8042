import type { WebSocket } from 'ws'
import type { Change } from '../../registry/change.js'
import type { Disposable } from '../../registry/disposable.js'
import type { RegistryApi } from '../../registry/registry-api.js'
import { toWire } from '../../registry/record.js'
import type { AuthGate } from './watch-session.js'
import { CLOSE_POLICY, WatchSession } from './watch-session.js'

/** Options of the {@link WatchHub}, with their defaults. */
export interface WatchHubOptions {
  /** A subscriber whose unsent bytes pass this is closed with 4008. Default 1 MiB. */
  maxBufferedBytes?: number
  /** How often peers are pinged; one missed pong drops them. Default 30 s. 0: never. */
  pingIntervalMs?: number
  /** Most open sessions with one label (token); past it a socket is closed with 1008. Default: no limit. */
  maxPerLabel?: number
  /** How long a socket opened without credentials has to send its auth frame. Default 5 s. */
  authTimeoutMs?: number
}

/** What a session reports to whoever counts (metrics). */
export interface WatchEvents {
  onSlowConsumer?: () => void
  onSent?: (frames: number) => void
}

/** A snapshot frame and the revision it was taken at. */
interface CachedSnapshot {
  revision: number
  frame: Buffer
}

/**
 * Owns every watch connection and fans each durable change out to the ones subscribed to
 * its service or to "*". A change is serialized once, when it is made (`change.frame`),
 * turned into bytes once here, and the same buffer is written to every subscriber.
 */
export class WatchHub {
  readonly registry: RegistryApi
  readonly maxBufferedBytes: number
  readonly maxPerLabel: number
  readonly authTimeoutMs: number
  readonly events: WatchEvents
  readonly #all = new Set<WatchSession>()
  readonly #byService = new Map<string, Set<WatchSession>>()
  readonly #sessions = new Set<WatchSession>()
  /** Open sessions per label (token id): the per-token connection limit counts here. */
  readonly #perLabel = new Map<string, number>()
  readonly #subscription: Disposable
  readonly #pinger: NodeJS.Timeout | undefined
  #allSnapshot: CachedSnapshot | undefined
  #closed = false

  constructor(registry: RegistryApi, options: WatchHubOptions = {}, events: WatchEvents = {}) {
    this.registry = registry
    this.maxBufferedBytes = options.maxBufferedBytes ?? 1024 * 1024
    this.maxPerLabel = options.maxPerLabel ?? Number.POSITIVE_INFINITY
    this.authTimeoutMs = options.authTimeoutMs ?? 5000
    this.events = events
    this.#subscription = registry.onChange((change) => this.#fanOut(change))
    const every = options.pingIntervalMs ?? 30_000
    this.#pinger = every > 0 ? setInterval(() => this.ping(), every) : undefined
  }

  /** Open connections. */
  get size(): number {
    return this.#sessions.size
  }

  /**
   * Takes a freshly upgraded socket. `label` names who opened it (a token id), so that
   * {@link closeWhere} can close a revoked token's sockets; `gate`, for a socket opened
   * without credentials, makes it authenticate in its first frame.
   */
  accept(socket: WebSocket, label?: string, gate?: AuthGate): WatchSession {
    const session = new WatchSession(this, socket, label, gate)
    if (this.#closed) {
      socket.close(1001, 'server shutting down')
      return session
    }
    // The upgrade was refused with a 429 at this limit already; upgrades that were in
    // flight together can only get here, and are closed, so the bound holds.
    if (label !== undefined && this.countLabel(label) >= this.maxPerLabel) {
      socket.close(CLOSE_POLICY, 'too many watch connections for this token')
      return session
    }
    this.#sessions.add(session)
    this.#count(label, 1)
    socket.once('close', () => this.release(session))
    return session
  }

  /** Open sessions labelled `label`. */
  countLabel(label: string): number {
    return this.#perLabel.get(label) ?? 0
  }

  /** Every label with an open session. */
  labels(): string[] {
    return [...this.#perLabel.keys()]
  }

  /**
   * Gives a session that authenticated in its first frame its label. False when that
   * label is at its limit of sessions: the session is then refused.
   */
  relabel(session: WatchSession, label: string): boolean {
    if (!this.#sessions.has(session)) return false
    if (this.countLabel(label) >= this.maxPerLabel) return false
    this.#count(session.label, -1)
    session.relabelled(label)
    this.#count(label, 1)
    return true
  }

  #count(label: string | undefined, delta: number): void {
    if (label === undefined) return
    const n = (this.#perLabel.get(label) ?? 0) + delta
    if (n > 0) this.#perLabel.set(label, n)
    else this.#perLabel.delete(label)
  }

  /** Adds `session` to the fan-out for `selector` ("*" or a service name). */
  index(session: WatchSession, selector: string): void {
    if (selector === '*') {
      this.#all.add(session)
      return
    }
    let set = this.#byService.get(selector)
    if (set === undefined) {
      set = new Set()
      this.#byService.set(selector, set)
    }
    set.add(session)
  }

  /** Removes `session` from the fan-out for `selector`. */
  unindex(session: WatchSession, selector: string): void {
    if (selector === '*') {
      this.#all.delete(session)
      return
    }
    const set = this.#byService.get(selector)
    if (set === undefined) return
    set.delete(session)
    if (set.size === 0) this.#byService.delete(selector)
  }

  /**
   * The snapshot frame of `selectors` at the registry's current revision. Call only when
   * the registry is settled (memory == committed). The frame for "*" is cached per
   * revision, so a thundering herd of reconnecting SDKs costs one serialization.
   */
  snapshot(selectors: readonly string[]): { revision: number; frame: Buffer } {
    const registry = this.registry
    const revision = registry.committedRevision
    const all = selectors.includes('*')
    if (all && this.#allSnapshot?.revision === revision) return this.#allSnapshot
    const names = all ? registry.serviceNames() : selectors
    const services: Record<string, unknown[]> = {}
    for (const name of names) {
      const entry = registry.service(name)
      const list: unknown[] = []
      if (entry !== undefined) for (const r of entry.instances.values()) list.push(toWire(r))
      services[name] = list
    }
    const frame = Buffer.from(JSON.stringify({ type: 'snapshot', revision, services }))
    const snap = { revision, frame }
    if (all) this.#allSnapshot = snap
    return snap
  }

  /** Closes every connection with 1001 so clients reconnect elsewhere; stops pinging. */
  close(): void {
    this.#closed = true
    clearInterval(this.#pinger)
    this.#subscription.dispose()
    for (const session of [...this.#sessions]) session.close(1001, 'server shutting down')
  }

  /** Closes the sessions that `predicate` picks (for example a revoked token's). */
  closeWhere(predicate: (session: WatchSession) => boolean, code: number, reason: string): number {
    let n = 0
    for (const session of [...this.#sessions]) {
      if (predicate(session)) {
        session.close(code, reason)
        n++
      }
    }
    return n
  }

  #fanOut(change: Change): void {
    // The cached snapshot is of an older revision now: let it go (it can be large).
    this.#allSnapshot = undefined
    const all = this.#all
    const some = this.#byService.get(change.service)
    if (all.size === 0 && some === undefined) return
    const frame = Buffer.from(change.frame)
    const revision = change.revision
    let sent = 0
    for (const session of all) if (session.deliver(revision, frame)) sent++
    if (some !== undefined) {
      for (const session of some) if (!all.has(session) && session.deliver(revision, frame)) sent++
    }
    this.events.onSent?.(sent)
  }

  /**
   * Pings every peer; one that did not answer the previous ping is dropped. Runs on the
   * ping interval; tests call it directly.
   */
  ping(): void {
    for (const session of this.#sessions) session.heartbeat()
  }

  /**
   * Takes a session out of the fan-out and the count at once: when it closes, or as soon
   * as the server decides to close it (its closing handshake may take a while).
   */
  release(session: WatchSession): void {
    // Called twice for a session the server closes (now, and at its close event): count once.
    if (this.#sessions.delete(session)) this.#count(session.label, -1)
    this.#all.delete(session)
    for (const selector of session.selectors) this.unindex(session, selector)
  }
}
