import { ErrorBody } from './protocol.js'
import { ClientClosedError, RegistryApiError, RegistryUnavailableError } from './errors.js'

/** Options of {@link RegistryRest}. */
export interface RegistryRestOptions {
  /** One or more server URLs (`http://127.0.0.1:7733`); requests fail over between them. */
  urls: readonly string[]
  /** A bearer token, sent on every request. */
  token?: string | undefined
  /** Timeout of one request, blocking queries excepted. Default 10 s. */
  timeoutMs?: number
}

/** An answer of the registry: its status and parsed JSON body (undefined when empty). */
export interface RestAnswer<T> {
  status: number
  body: T
  headers: Headers
}

/**
 * The SDK's REST client of the registry: JSON in and out, the token on every request, the
 * error shape turned into {@link RegistryApiError}, and failover across several server
 * URLs: a network error moves the client to the next URL and retries there once per URL.
 */
export class RegistryRest {
  readonly urls: readonly string[]
  readonly #token: string | undefined
  readonly #timeoutMs: number
  readonly #closing = new AbortController()
  #current = 0

  constructor(options: RegistryRestOptions) {
    if (options.urls.length === 0) throw new RangeError('rollcall: at least one server URL is needed')
    this.urls = options.urls.map((u) => u.replace(/\/+$/, ''))
    this.#token = options.token
    this.#timeoutMs = options.timeoutMs ?? 10_000
  }

  /** The URL requests go to now. */
  get url(): string {
    return this.urls[this.#current] as string
  }

  /** The token headers, for the WebSocket upgrade too. */
  headers(): Record<string, string> {
    return this.#token === undefined ? {} : { authorization: `Bearer ${this.#token}` }
  }

  /** Moves to the next server URL (after a failure there). */
  failover(): void {
    this.#current = (this.#current + 1) % this.urls.length
  }

  /**
   * Sends one request. Resolves with any 2xx or 404 INSTANCE_NOT_FOUND answer for the
   * caller to read; other error answers throw {@link RegistryApiError}; a server that
   * cannot be reached on any URL throws {@link RegistryUnavailableError}.
   */
  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<RestAnswer<T>> {
    let lastError: unknown
    for (let tries = 0; tries < this.urls.length; tries++) {
      if (this.#closing.signal.aborted) throw new ClientClosedError()
      const url = this.url
      const signals = [this.#closing.signal, AbortSignal.timeout(options.timeoutMs ?? this.#timeoutMs)]
      if (options.signal !== undefined) signals.push(options.signal)
      let res: Response
      try {
        res = await fetch(url + path, {
          method,
          headers: { ...this.headers(), ...(body !== undefined && { 'content-type': 'application/json' }) },
          ...(body !== undefined && { body: JSON.stringify(body) }),
          signal: AbortSignal.any(signals),
        })
      } catch (err) {
        if (this.#closing.signal.aborted) throw new ClientClosedError()
        if (options.signal?.aborted) throw err
        lastError = err
        this.failover()
        continue
      }
      const text = await res.text().catch(() => '')
      let parsed: unknown
      try {
        parsed = text === '' ? undefined : JSON.parse(text)
      } catch {
        parsed = undefined
      }
      if (res.ok || res.status === 304) return { status: res.status, body: parsed as T, headers: res.headers }
      const shaped = ErrorBody.safeParse(parsed)
      if (shaped.success) {
        const e = shaped.data.error
        if (e.code === 'INSTANCE_NOT_FOUND') return { status: res.status, body: parsed as T, headers: res.headers }
        throw new RegistryApiError(res.status, e.code, e.message, e.details)
      }
      if (res.status >= 500) {
        // A proxy or a node on its way down: try the next one.
        lastError = new Error(`HTTP ${res.status}`)
        this.failover()
        continue
      }
      throw new RegistryApiError(res.status, res.status === 404 ? 'NOT_FOUND' : 'VALIDATION_FAILED', `HTTP ${res.status}`)
    }
    throw new RegistryUnavailableError(this.url, { cause: lastError })
  }

  /** Aborts every request in flight; later requests throw {@link ClientClosedError}. */
  close(): void {
    this.#closing.abort()
  }
}
