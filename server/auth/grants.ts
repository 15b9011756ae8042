/**
 * What a set of scopes allows. Scopes are strings of the protocol's `Scope` grammar:
 * `read`, `admin`, `register:<service-pattern>`; a pattern is a service name in which `*`
 * matches any run of characters (dots included), as Consul's ACL prefixes and etcd's key
 * ranges let one token cover a team's services.
 *
 * @example
 * ```ts
 * const g = Grants.of(['read', 'register:team-a.*'])
 * g.canRegister('team-a.orders') // true
 * g.canRegister('team-b.orders') // false
 * ```
 */
export class Grants {
  /** The scopes as given, for messages and listings. */
  readonly scopes: readonly string[]
  readonly admin: boolean
  readonly read: boolean
  readonly #register: readonly string[]

  private constructor(scopes: readonly string[]) {
    this.scopes = scopes
    this.admin = scopes.includes('admin')
    this.read = this.admin || scopes.includes('read')
    this.#register = scopes.filter((s) => s.startsWith('register:')).map((s) => s.slice('register:'.length))
  }

  /** Grants of already validated scopes. */
  static of(scopes: readonly string[]): Grants {
    return new Grants([...scopes])
  }

  /** Everything: auth off, or the bootstrap admin token. */
  static readonly all: Grants = new Grants(['admin'])
  /** Nothing at all. */
  static readonly none: Grants = new Grants([])

  /** Whether any `register:` scope (or admin) is held: the batch heartbeat's first gate. */
  get canRegisterSome(): boolean {
    return this.admin || this.#register.length > 0
  }

  /** Whether instances of `service` may be registered, renewed, patched and removed. */
  canRegister(service: string): boolean {
    if (this.admin) return true
    for (const pattern of this.#register) if (globMatch(pattern, service)) return true
    return false
  }
}

/**
 * Whether `text` matches `glob`, where `*` matches any run of characters and every other
 * character only itself. The greedy two-pointer walk (as in shell wildcard matchers) is
 * O(glob x text) at worst; a regular expression of many `.*` could backtrack
 * exponentially on a 128-character name.
 */
export function globMatch(glob: string, text: string): boolean {
  let g = 0
  let t = 0
  let star = -1
  let mark = 0
  while (t < text.length) {
    if (g < glob.length && glob[g] !== '*' && glob[g] === text[t]) {
      g++
      t++
    } else if (g < glob.length && glob[g] === '*') {
      star = g++
      mark = t
    } else if (star >= 0) {
      g = star + 1
      t = ++mark
    } else {
      return false
    }
  }
  while (g < glob.length && glob[g] === '*') g++
  return g === glob.length
}
