import t from 'tap'
import { ownerOf } from '../server/cluster/rendezvous.js'

// Rendezvous hashing shares active checks among the live nodes: every node computes the
// same owner from the same set, the load spreads, and when a node dies only its own
// instances move.

const nodes = ['node-a', 'node-b', 'node-c']
const keys = Array.from({ length: 3000 }, (_, i) => `svc-${i % 30}/i-${i}`)

t.test('every node computes the same owner, whatever the order of the set', async (t) => {
  const differ = keys.filter((key) => ownerOf(nodes, key) !== ownerOf([...nodes].reverse(), key))
  t.same(differ, [])
  t.equal(ownerOf([], 'a/b'), undefined, 'no live node: no owner')
})

t.test('the checks spread over the nodes', async (t) => {
  const counts = new Map<string, number>()
  for (const key of keys) counts.set(ownerOf(nodes, key)!, (counts.get(ownerOf(nodes, key)!) ?? 0) + 1)
  for (const node of nodes) t.ok((counts.get(node) ?? 0) > 800, `${node} owns ${counts.get(node)} of 3000`)
})

t.test("when a node dies only its own instances move, spread over the others", async (t) => {
  const after = ['node-a', 'node-c']
  let moved = 0
  let stayedWrongly = 0
  const to = new Map<string, number>()
  for (const key of keys) {
    const before = ownerOf(nodes, key)
    const now = ownerOf(after, key)!
    if (before !== 'node-b') {
      if (now !== before) stayedWrongly++
    } else {
      moved++
      to.set(now, (to.get(now) ?? 0) + 1)
    }
  }
  t.equal(stayedWrongly, 0, 'the survivors keep what they had')
  t.ok(moved > 0)
  t.ok((to.get('node-a') ?? 0) > moved / 4 && (to.get('node-c') ?? 0) > moved / 4, 'spread over both survivors')
})
