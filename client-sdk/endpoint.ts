import type { Health, Instance, InstanceStatus, Scheme } from './protocol.js'

/**
 * What an {@link Endpoint} is made from: a whole {@link Instance} as the server sends it, or
 * just the fields that picking reads (static lists, tests). An `Instance` is assignable to
 * it as is.
 */
export interface EndpointInit {
  id: string
  host: string
  port: number
  /** Default: the empty string (an endpoint outside any service). */
  service?: string
  /** 0..1000, default 100. 0 takes no new traffic. */
  weight?: number
  zone?: string | undefined
  /** Default `http`. */
  scheme?: Scheme
  /** Default `up`. */
  status?: InstanceStatus
  /** Default `passing`. */
  health?: Health
}

/** Whether `init` is a whole Instance from the server rather than a hand-made init. */
function isInstance(init: EndpointInit | Instance): init is Instance {
  return typeof (init as Instance).revision === 'number' && typeof (init as Instance).registeredAt === 'string'
}

/** `scheme://host:port`, with brackets around an IPv6 literal. */
export function originOf(scheme: Scheme, host: string, port: number): string {
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
  return `${scheme}://${h}:${port}`
}

/**
 * The SDK's record of one instance: the fields the pick path reads, copied into plain
 * properties (monomorphic and cheap to read in a balancer's loop), the whole Instance for
 * everything else, and the mutable `inFlight` count that least-request balances on.
 *
 * One Endpoint lives as long as its instance is known: updates pushed by the server
 * change it in place through {@link Endpoint.update}, so `inFlight` and identity survive
 * them. Balancers compare endpoints by identity.
 *
 * @example
 * ```ts
 * const ep = new Endpoint({ id: 'o-1', host: '10.0.0.7', port: 8080, zone: 'eu-1a' })
 * ep.inFlight++
 * try { await fetch(ep.origin + '/v1/items') } finally { ep.inFlight-- }
 * ```
 */
export class Endpoint {
  readonly id: string
  service = ''
  host = ''
  port = 0
  weight = 100
  zone: string | undefined = undefined
  scheme: Scheme = 'http'
  status: InstanceStatus = 'up'
  health: Health = 'passing'
  /** `scheme://host:port`, built once per update so requests need no string work to find it. */
  origin = ''
  /** The whole record as last received from the server; undefined for a hand-made endpoint. */
  instance: Instance | undefined = undefined
  /**
   * Requests sent to this endpoint and not yet answered. Whoever sends a request
   * increments it before and decrements it after (in a `finally`); least-request reads it.
   */
  inFlight = 0

  constructor(init: EndpointInit | Instance) {
    this.id = init.id
    this.update(init)
  }

  /** Applies a newer version of the same instance. Throws if the id differs. */
  update(init: EndpointInit | Instance): void {
    if (init.id !== this.id) throw new RangeError(`endpoint ${this.id} cannot take the record of ${init.id}`)
    this.service = init.service ?? ''
    this.host = init.host
    this.port = init.port
    this.weight = init.weight ?? 100
    this.zone = init.zone
    this.scheme = init.scheme ?? 'http'
    this.status = init.status ?? 'up'
    this.health = init.health ?? 'passing'
    this.origin = originOf(this.scheme, this.host, this.port)
    this.instance = isInstance(init) ? init : undefined
  }

  /** `status == up && health == passing`, as in the protocol's `isRoutable`. */
  get routable(): boolean {
    return this.status === 'up' && this.health === 'passing'
  }
}
