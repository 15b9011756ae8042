import { createHash } from 'node:crypto'

/**
 * The node that runs an instance's active check: rendezvous (highest random weight)
 * hashing over the live nodes. Every node computes the same answer from the same set, and
 * when a node dies only its own instances move, spread over the others.
 *
 * @example
 * ```ts
 * ownerOf(['http://10.0.0.1:7733', 'http://10.0.0.2:7733'], 'orders/o-1')
 * ```
 */
export function ownerOf(nodes: readonly string[], key: string): string | undefined {
  let best: string | undefined
  let bestScore = -1n
  for (const node of nodes) {
    const score = createHash('sha256').update(node).update('\u0000').update(key).digest().readBigUInt64BE(0)
    if (score > bestScore || (score === bestScore && best !== undefined && node < best)) {
      best = node
      bestScore = score
    }
  }
  return best
}
