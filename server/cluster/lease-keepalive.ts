import type { IDuplexStream, ILeaseKeepAliveRequest, ILeaseKeepAliveResponse, LeaseClient } from 'etcd3'

type Stream = IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>

interface Pending {
  resolve: (ttl: number) => void
  reject: (err: Error) => void
  timer: NodeJS.Timeout
}

/**
 * One etcd LeaseKeepAlive stream. etcd answers the requests of a stream in order, one
 * answer per request, so the answers for a lease are matched to its requests first in,
 * first out. A stream that fails (its etcd member died) fails what is in flight, and the
 * next keepalive opens a new stream, which the client's pool places on a live member.
 */
class KeepaliveStream {
  readonly #client: LeaseClient
  readonly #timeoutMs: number
  readonly #pending = new Map<string, Pending[]>()
  #stream: Promise<Stream> | undefined
  /** The open stream, once it is open: the one whose answers `#pending` waits for. */
  #live: Stream | undefined

  constructor(client: LeaseClient, timeoutMs: number) {
    this.#client = client
    this.#timeoutMs = timeoutMs
  }

  async keepalive(id: string): Promise<number> {
    const stream = await this.#open()
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => this.#fail(stream, new Error('lease keepalive timed out')), this.#timeoutMs)
      let queue = this.#pending.get(id)
      if (queue === undefined) {
        queue = []
        this.#pending.set(id, queue)
      }
      queue.push({ resolve, reject, timer })
      stream.write({ ID: id })
    })
  }

  close(err: Error): void {
    if (this.#live !== undefined) this.#fail(this.#live, err)
  }

  #open(): Promise<Stream> {
    if (this.#stream !== undefined) return this.#stream
    const opening = this.#client.leaseKeepAlive().then((stream) => {
      stream.on('data', (res: ILeaseKeepAliveResponse) => {
        const id = String(res.ID)
        const queue = this.#pending.get(id)
        const first = queue?.shift()
        if (queue !== undefined && queue.length === 0) this.#pending.delete(id)
        if (first === undefined) return
        clearTimeout(first.timer)
        first.resolve(Number(res.TTL))
      })
      stream.on('error', (err: Error) => this.#fail(stream, err))
      stream.on('end', () => this.#fail(stream, new Error('lease keepalive stream ended')))
      this.#live = stream
      return stream
    })
    this.#stream = opening
    // A failed open is forgotten, so the next keepalive tries again (on another member).
    opening.catch(() => {
      if (this.#stream === opening) this.#stream = undefined
    })
    return opening
  }

  #fail(stream: Stream, err: Error): void {
    // Only the live stream has requests waiting; an old one's late events change nothing.
    if (this.#live !== stream) return
    this.#live = undefined
    this.#stream = undefined
    const pending = [...this.#pending.values()].flat()
    this.#pending.clear()
    for (const p of pending) {
      clearTimeout(p.timer)
      p.reject(err)
    }
    try {
      stream.end()
    } catch {
      // already ended
    }
  }
}

/**
 * Lease keepalives for many leases: the heartbeat hot path. etcd serves the requests of
 * one stream one after the other (a follower forwards each to the leader), so a single
 * stream caps heartbeats at one round trip each; several streams, used in turn, keep
 * that many in flight.
 */
export class LeaseKeepalives {
  readonly #streams: KeepaliveStream[]
  #next = 0
  #closed = false

  constructor(client: LeaseClient, options: { streams?: number; timeoutMs?: number } = {}) {
    const n = options.streams ?? 16
    this.#streams = Array.from({ length: n }, () => new KeepaliveStream(client, options.timeoutMs ?? 5000))
  }

  /**
   * Renews lease `id` once. Resolves with the TTL etcd granted (seconds), or 0 when the
   * lease no longer exists (it expired or was revoked).
   */
  keepalive(id: string): Promise<number> {
    if (this.#closed) return Promise.reject(new Error('keepalives are closed'))
    const stream = this.#streams[this.#next] as KeepaliveStream
    this.#next = (this.#next + 1) % this.#streams.length
    return stream.keepalive(id)
  }

  /** Fails whatever is in flight and closes the streams. */
  close(): void {
    this.#closed = true
    for (const s of this.#streams) s.close(new Error('keepalives are closed'))
  }
}
