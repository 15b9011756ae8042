import { createServer } from 'node:net'
import type { AddressInfo, Server, Socket } from 'node:net'
import { connect } from 'node:net'

/**
 * A TCP proxy in front of a server, for cutting an SDK's connections on purpose (as
 * etcd3's tests do): `drop()` destroys every open connection, `refuse` makes new ones
 * fail at once, and `retarget()` points it at another port.
 */
export class TcpProxy {
  readonly server: Server
  readonly #pairs = new Set<[Socket, Socket]>()
  #target: number
  /** While true, new connections are closed at once. */
  refuse = false
  /** Connections accepted so far. */
  accepted = 0

  private constructor(target: number) {
    this.#target = target
    this.server = createServer((client) => {
      this.accepted++
      if (this.refuse) {
        client.destroy()
        return
      }
      const upstream = connect(this.#target, '127.0.0.1')
      const pair: [Socket, Socket] = [client, upstream]
      this.#pairs.add(pair)
      const end = () => {
        client.destroy()
        upstream.destroy()
        this.#pairs.delete(pair)
      }
      client.on('error', end).on('close', end)
      upstream.on('error', end).on('close', end)
      client.pipe(upstream)
      upstream.pipe(client)
    })
  }

  static async start(target: number): Promise<TcpProxy> {
    const proxy = new TcpProxy(target)
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve))
    return proxy
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  /** Open connections through the proxy. */
  get open(): number {
    return this.#pairs.size
  }

  retarget(port: number): void {
    this.#target = port
  }

  /** Destroys every open connection, as a network failure would. */
  drop(): void {
    for (const [a, b] of [...this.#pairs]) {
      a.destroy()
      b.destroy()
    }
    this.#pairs.clear()
  }

  async close(): Promise<void> {
    this.drop()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}

/** Resolves once `predicate` holds, checking on every turn of `step` ms; a safety net, not an assertion. */
export async function eventually(predicate: () => boolean | Promise<boolean>, what: string, limitMs = 60_000): Promise<void> {
  const deadline = Date.now() + limitMs
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}
