import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import type { Change } from '../../server/registry/change.js'
import type { Registry } from '../../server/registry/registry.js'

type Teardown = { teardown(fn: () => unknown): void }

/** A request an {@link HttpTarget} received; the test answers it when parked. */
export interface ReceivedRequest {
  /** 1-based arrival order on its target. */
  readonly n: number
  readonly path: string
  /** Whether the request is still waiting for an answer. */
  readonly parked: boolean
  /** Whether the prober closed the connection. */
  readonly closed: boolean
  /** Resolves when the prober closes the connection (done, timed out or aborted). */
  readonly whenClosed: Promise<void>
  /** Answers a parked request. */
  answer(status: number, headers?: Record<string, string>, body?: string): void
}

/**
 * What an {@link HttpTarget} does with a request: answer at once with a status code, or
 * park it (`hold`) so that the test answers it, or never does (a hung process).
 */
export type TargetMode = number | 'hold'

/** A real HTTP (or HTTPS) server on 127.0.0.1 for checks to probe, steered by the test. */
export interface HttpTarget {
  readonly port: number
  mode: TargetMode
  /** Every request so far, in arrival order. */
  readonly received: ReceivedRequest[]
  /** How many requests reached each path. */
  count(path?: string): number
  /** Most requests parked at one moment. */
  readonly maxParked: number
  /** Resolves with the n-th request (1-based) once it arrived. */
  request(n: number): Promise<ReceivedRequest>
  /** Resolves with the next request on `path` after the ones seen so far. */
  nextOn(path: string): Promise<ReceivedRequest>
  /** Resolves once every connection the server accepted is closed. */
  idle(): Promise<void>
  /** Open connections as the server counts them. */
  connections(): Promise<number>
  close(): Promise<void>
}

/** Starts an HTTP target (HTTPS when `tls` is given), closed with the test. */
export async function startHttpTarget(t: Teardown, mode: TargetMode = 200, tls?: { key: string; cert: string }): Promise<HttpTarget> {
  const received: ReceivedRequest[] = []
  const waiters = new Map<number, Array<(r: ReceivedRequest) => void>>()
  const sockets = new Set<net.Socket>()
  let idleWaiters: Array<() => void> = []
  let parkedNow = 0
  let maxParked = 0

  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    let parked = true
    let closed = false
    let markClosed!: () => void
    const whenClosed = new Promise<void>((resolve) => (markClosed = resolve))
    parkedNow++
    maxParked = Math.max(maxParked, parkedNow)
    const unpark = () => {
      if (parked) {
        parked = false
        parkedNow--
      }
    }
    res.on('close', () => {
      closed = true
      unpark()
      markClosed()
    })
    const r: ReceivedRequest = {
      n: received.length + 1,
      path: req.url ?? '',
      get parked() {
        return parked
      },
      get closed() {
        return closed
      },
      whenClosed,
      answer(status, headers = {}, body = 'ok') {
        if (!parked) throw new Error(`request ${r.n} was already answered or closed`)
        unpark()
        res.writeHead(status, headers).end(body)
      },
    }
    received.push(r)
    for (const w of waiters.get(r.n) ?? []) w(r)
    waiters.delete(r.n)
    if (target.mode !== 'hold') r.answer(target.mode)
  }

  const server = tls === undefined ? http.createServer(onRequest) : https.createServer(tls, onRequest)
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket)
    socket.on('close', () => {
      sockets.delete(socket)
      if (sockets.size === 0) {
        const ws = idleWaiters
        idleWaiters = []
        for (const w of ws) w()
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port

  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    const done = new Promise<void>((resolve) => server.close(() => resolve()))
    server.closeAllConnections()
    await done
  }
  t.teardown(close)

  const target: HttpTarget = {
    port,
    mode,
    received,
    count: (path) => (path === undefined ? received.length : received.filter((r) => r.path === path).length),
    get maxParked() {
      return maxParked
    },
    request(n) {
      const r = received[n - 1]
      if (r !== undefined) return Promise.resolve(r)
      return new Promise((resolve) => {
        const list = waiters.get(n) ?? []
        list.push(resolve)
        waiters.set(n, list)
      })
    },
    async nextOn(path) {
      const want = received.filter((r) => r.path === path).length + 1
      let seen = 0
      for (let n = 1; ; n++) {
        const r = await target.request(n)
        if (r.path === path && ++seen === want) return r
      }
    },
    idle: () => (sockets.size === 0 ? Promise.resolve() : new Promise((resolve) => idleWaiters.push(resolve))),
    connections: () =>
      new Promise((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n)))),
    close,
  }
  return target
}

/** A real TCP listener that the test can close and reopen on the same port. */
export interface TcpTarget {
  readonly port: number
  /** Connections accepted so far. */
  readonly accepted: number
  /** Resolves once `n` connections in all were accepted. */
  accepts(n: number): Promise<void>
  /** Resolves once every connection it accepted is closed. */
  idle(): Promise<void>
  /** Stops listening (the port then refuses), drops open connections and waits until they are closed. */
  stop(): Promise<void>
  /** Listens again on the same port. */
  reopen(): Promise<void>
}

/** Starts a TCP listener on 127.0.0.1, closed with the test. */
export async function startTcpTarget(t: Teardown): Promise<TcpTarget> {
  let accepted = 0
  let waiters: Array<{ n: number; resolve: () => void }> = []
  let idleWaiters: Array<() => void> = []
  const sockets = new Set<net.Socket>()
  const idle = () => (sockets.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => idleWaiters.push(resolve)))
  const server = net.createServer((socket) => {
    accepted++
    sockets.add(socket)
    socket.on('close', () => {
      sockets.delete(socket)
      if (sockets.size > 0) return
      const ws = idleWaiters
      idleWaiters = []
      for (const w of ws) w()
    })
    socket.on('error', () => undefined)
    // A TCP check only connects; close our side when it does.
    socket.on('end', () => socket.end())
    const ready = waiters.filter((w) => accepted >= w.n)
    waiters = waiters.filter((w) => accepted < w.n)
    for (const w of ready) w.resolve()
  })
  const listen = (port: number) => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  await listen(0)
  const port = (server.address() as net.AddressInfo).port
  const stop = async () => {
    if (server.listening) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const s of sockets) s.destroy()
      await closed
    }
    // The server's close event does not wait for its sockets' handles to be closed.
    await idle()
  }
  t.teardown(stop)
  return {
    port,
    get accepted() {
      return accepted
    },
    accepts: (n) => (accepted >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }))),
    idle,
    stop,
    reopen: () => listen(port),
  }
}

/** A port on 127.0.0.1 with nothing listening on it (it was free a moment ago). */
export async function deadPort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/**
 * Resolves with the first change (from now on) that `match` accepts. The timeout is only a
 * safety net for a broken build, never part of what a test asserts.
 */
export function nextChange(
  registry: Pick<Registry, 'onChange'>,
  match: (change: Change) => boolean,
  safetyMs = 30_000,
): Promise<Change> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sub.dispose()
      reject(new Error('no matching change arrived (safety timeout)'))
    }, safetyMs)
    const sub = registry.onChange((change) => {
      if (!match(change)) return
      clearTimeout(timer)
      sub.dispose()
      resolve(change)
    })
  })
}

/** Matches an upsert of `service/id` whose health is `health`. */
export const healthOf =
  (service: string, id: string, health: string) =>
  (c: Change): boolean =>
    c.op === 'upsert' && c.service === service && c.instance.id === id && c.instance.health === health

/**
 * A self-signed certificate and key for HTTPS targets, made for these tests only with
 * `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 36500`.
 * It guards nothing: checks do not verify certificates.
 */
export const SELF_SIGNED = {
  key: `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSnqxC4nD0XumqU+x
7GrBJJtTCw2zNTzYVWeZbLLKNzehRANCAARjGSmdR3aqrJtM6IdLXNtIQiJSF9gj
PQ+Y9+P6ROa3y+g2X7Kbw7CkZfWeAcnG0P4bNrHRkUFfZFCp+woFD5ZR
-----END PRIVATE KEY-----
`,
  cert: `-----BEGIN CERTIFICATE-----
MIIBnzCCAUWgAwIBAgIUK2ic3MIfYKHzxMRgOvSoO0UoP4swCgYIKoZIzj0EAwIw
JDEiMCAGA1UEAwwZcm9sbGNhbGwtdGVzdC1zZWxmLXNpZ25lZDAgFw0yNjExMjUx
NzM5MjlaGA8yMTI2MTEwMTE3MzkyOVowJDEiMCAGA1UEAwwZcm9sbGNhbGwtdGVz
dC1zZWxmLXNpZ25lZDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABGMZKZ1Hdqqs
m0zoh0tc20hCIlIX2CM9D5j34/pE5rfL6DZfspvDsKRl9Z4BycbQ/hs2sdGRQV9k
UKn7CgUPllGjUzBRMB0GA1UdDgQWBBQGWHg9uCC6tL2p3LIHXmSiRBp5RzAfBgNV
HSMEGDAWgBQGWHg9uCC6tL2p3LIHXmSiRBp5RzAPBgNVHRMBAf8EBTADAQH/MAoG
CCqGSM49BAMCA0gAMEUCIQDOn4E44b+lPMk05oaHTu0RjIGapA8ZGAG1gXJHrcSc
mgIgeTQxlkrJ1wPtj8C/1ydx+5MgthaOaG6Wq/hLYsYwZiY=
-----END CERTIFICATE-----
`,
}
