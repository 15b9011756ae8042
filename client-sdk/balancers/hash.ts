/**
 * A 32-bit string hash for the ring: FNV-1a over the UTF-16 code units, then murmur3's
 * fmix32 finalizer, because FNV alone spreads similar strings (`o-1#0`, `o-1#1`) poorly
 * over the high bits that a ring lookup compares first. No allocation; stable across
 * processes and versions, so every client places keys and instances the same way.
 */
export function hashString(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}
