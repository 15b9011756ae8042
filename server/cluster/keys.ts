/**
 * The key layout of one rollcall cluster in etcd, relative to its prefix (`--etcd-prefix`,
 * default `/rollcall`; the client's namespace adds it):
 *
 *   instances/<service>/<id>   the instance, as JSON; its mod revision is its revision
 *   leases/<service>/<id>      the lease id, attached to that etcd lease (TTL = ttlSeconds)
 *   nodes/<node id>            a live rollcall node's URL, attached to the node's session lease;
 *                              the oldest of these keys (lowest create revision) is the
 *                              elected node, as in etcd's election recipe
 *   revision                   touched by every write, so a read can find the newest write
 *
 * Names match `^[A-Za-z0-9][A-Za-z0-9._-]*$`, so `/` splits service from id unambiguously.
 */
export const INSTANCES = 'instances/'
export const LEASES = 'leases/'
export const NODES = 'nodes/'
export const REVISION_KEY = 'revision'

export const instanceKey = (service: string, id: string): string => `${INSTANCES}${service}/${id}`
export const leaseKey = (service: string, id: string): string => `${LEASES}${service}/${id}`
export const nodeKey = (nodeId: string): string => `${NODES}${nodeId}`

/** Splits `<service>/<id>` after a key's kind, or undefined for a malformed key. */
export function splitName(rest: string): { service: string; id: string } | undefined {
  const slash = rest.indexOf('/')
  if (slash <= 0 || slash === rest.length - 1) return undefined
  return { service: rest.slice(0, slash), id: rest.slice(slash + 1) }
}
