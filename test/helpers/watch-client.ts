import WebSocket from 'ws'
import type { Instance, ServerMessage } from '../../client-sdk/protocol.js'

/**
 * A test's end of GET /v1/watch: every message kept in order, `next()` to await the next
 * one, and `view` rebuilt from snapshots and changes as an SDK would.
 */
export class WatchClient {
  readonly ws: WebSocket
  readonly messages: ServerMessage[] = []
  readonly raw: string[] = []
  /** service -> id -> instance, as rebuilt from what arrived. */
  readonly view = new Map<string, Map<string, Instance>>()
  /** Revision of the last snapshot or change. */
  revision = -1
  closeCode: number | undefined
  readonly closed: Promise<number>
  #read = 0
  #waiters: Array<() => void> = []

  constructor(url: string, options: WebSocket.ClientOptions = {}) {
    this.ws = new WebSocket(url.replace(/^http/, 'ws') + '/v1/watch', options)
    this.ws.on('message', (data) => {
      const text = data.toString()
      this.raw.push(text)
      const m = JSON.parse(text) as ServerMessage
      this.messages.push(m)
      this.#apply(m)
      this.#wake()
    })
    this.closed = new Promise((resolve) =>
      this.ws.once('close', (code) => {
        this.closeCode = code
        this.#wake()
        resolve(code)
      }),
    )
    this.ws.on('error', () => undefined)
  }

  static async open(url: string, options?: WebSocket.ClientOptions): Promise<WatchClient> {
    const c = new WatchClient(url, options)
    await new Promise<void>((resolve, reject) => {
      c.ws.once('open', () => resolve())
      c.ws.once('error', reject)
    })
    return c
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message))
  }

  subscribe(services: string[], since?: number): void {
    this.send({ type: 'subscribe', services, ...(since !== undefined && { since }) })
  }

  /** The next message not yet taken by `next()`. Rejects if the socket closes first. */
  async next(): Promise<ServerMessage> {
    while (this.#read >= this.messages.length) {
      if (this.closeCode !== undefined) throw new Error(`socket closed (${this.closeCode})`)
      await new Promise<void>((resolve) => this.#waiters.push(resolve))
    }
    return this.messages[this.#read++] as ServerMessage
  }

  /** Resolves once `predicate` holds (checked after every message). */
  async until(predicate: () => boolean): Promise<void> {
    while (!predicate()) {
      if (this.closeCode !== undefined) throw new Error(`socket closed (${this.closeCode})`)
      await new Promise<void>((resolve) => this.#waiters.push(resolve))
    }
  }

  close(): void {
    this.ws.terminate()
  }

  #wake(): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const w of waiters) w()
  }

  #apply(m: ServerMessage): void {
    if (m.type === 'snapshot') {
      for (const [service, list] of Object.entries(m.services)) {
        this.view.set(service, new Map(list.map((i) => [i.id, i])))
      }
      this.revision = m.revision
    } else if (m.type === 'change') {
      let svc = this.view.get(m.service)
      if (svc === undefined) {
        svc = new Map()
        this.view.set(m.service, svc)
      }
      if (m.op === 'delete') svc.delete(m.instance.id)
      else svc.set(m.instance.id, m.instance)
      this.revision = m.revision
    }
  }
}
