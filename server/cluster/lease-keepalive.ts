import type { IDuplexStream, ILeaseKeepAliveRequest, ILeaseKeepAliveResponse, LeaseClient } from 'etcd3'

type Stream = IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>

interface Pending {
  resolve: (ttl: number) => void
  reject: (err: Error) => void
  timer: NodeJS.Timeout
}

/**
 * Lease keepalives for many leases over one etcd LeaseKeepAlive stream: the heartbeat hot
 * path. etcd answers the requests of one stream in order, one answer per request, so the
 * answers for a lease are matched to its requests first in, first out. A stream that
 * fails (its etcd member died) fails what is in flight, and the next keepalive opens a new
 * stream, which the client's pool places on a live member.
 */
export class LeaseKeepalives {
  readonly #client: LeaseClient
  readonly #timeoutMs: number
  readonly #pending = new Map<string, Pending[]>()
  #stream: Promise<Stream> | undefined
  /** The open stream, once it is open: the one whose answers `#pending` waits for. */
  #live: Stream | undefined
  #closed = false

  constructor(client: LeaseClient, timeoutMs = 5000) {
    this.#client = client
    this.#timeoutMs = timeoutMs
  }

  /**
   * Renews lease `id` once. Resolves with the TTL etcd granted (seconds), or 0 when the
   * lease no longer exists (it expired or was revoked).
   */
  async keepalive(id: string): Promise<number> {
    if (this.#closed) throw new Error('keepalives are closed')
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

  /** Fails whatever is in flight and closes the stream. */
  close(): void {
    this.#closed = true
    if (this.#live !== undefined) this.#fail(this.#live, new Error('keepalives are closed'))
  }

  #open(): Promise<Stream> {
    if (this.#stream !== undefined) return this.#stream
    const opening = this.#client.leaseKeepAlive().then((stream) => {
      stream.on('data', (res: ILeaseKeepAliveResponse) => {
        const queue = this.#pending.get(String(res.ID))
        const first = queue?.shift()
        if (queue !== undefined && queue.length === 0) this.#pending.delete(String(res.ID))
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
