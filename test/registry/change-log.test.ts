import t from 'tap'
import { RegisterBody } from '../../client-sdk/protocol.js'
import type { Change } from '../../server/registry/change.js'
import { makeChange } from '../../server/registry/change.js'
import { ChangeLog } from '../../server/registry/change-log.js'
import { body as instanceBody, openCore, registerNow } from '../helpers/registry.js'

const instance = {
  ...RegisterBody.parse({ host: 'h', port: 1 }),
  service: 's',
  id: 'i',
  health: 'passing' as const,
  registeredAt: '',
  updatedAt: '',
  lastHeartbeatAt: '',
  expiresAt: '',
  revision: 0,
}
const change = (revision: number): Change => makeChange(revision, 'upsert', { ...instance, revision })
const revisions = (changes: Change[] | undefined) => changes?.map((c) => c.revision)

t.test('a change is serialized once, as the watch frame', async (t) => {
  const c = change(7)
  t.same(JSON.parse(c.frame), { type: 'change', revision: 7, service: 's', op: 'upsert', instance: c.instance })
})

t.test('ChangeLog keeps the last `capacity` changes and wraps around', async (t) => {
  const log = new ChangeLog(3)
  t.equal(log.size, 0)
  t.equal(log.oldest, undefined)
  t.equal(log.newest, undefined)
  t.same(log.after(0, 0), [], 'nothing after the current revision')
  t.equal(log.after(0, 2), undefined, 'an empty log cannot answer for changes it never held')

  for (let r = 1; r <= 5; r++) log.push(change(r))
  t.equal(log.size, 3)
  t.equal(log.oldest, 3)
  t.equal(log.newest, 5)
  t.same(revisions(log.after(2, 5)), [3, 4, 5], 'since right before the oldest: all of it')
  t.same(revisions(log.after(3, 5)), [4, 5])
  t.same(revisions(log.after(4, 5)), [5])
  t.same(log.after(5, 5), [], 'since == current: nothing')
  t.equal(log.after(1, 5), undefined, 'too old: change 2 was dropped, so a snapshot is needed')
  t.equal(log.after(0, 5), undefined)
  t.equal(log.after(6, 5), undefined, 'since > current: from another (or a wiped) registry')

  // Wrap several times over.
  for (let r = 6; r <= 20; r++) log.push(change(r))
  t.equal(log.oldest, 18)
  t.same(revisions(log.after(17, 20)), [18, 19, 20])
  t.same(revisions(log.after(19, 20)), [20])
  t.equal(log.after(16, 20), undefined)
})

t.test('ChangeLog answers across gaps in revisions', async (t) => {
  // A log restored from a store may hold revisions with gaps (changes of other kinds).
  const log = new ChangeLog(10)
  for (const r of [3, 5, 9]) log.push(change(r))
  t.same(revisions(log.after(2, 9)), [3, 5, 9])
  t.same(revisions(log.after(4, 9)), [5, 9])
  t.same(revisions(log.after(6, 9)), [9])
})

t.test('ChangeLog refuses changes out of order and a bad capacity', async (t) => {
  const log = new ChangeLog(3)
  log.push(change(2))
  t.throws(() => log.push(change(2)))
  t.throws(() => log.push(change(1)))
  t.throws(() => new ChangeLog(0), RangeError)
  t.throws(() => new ChangeLog(1.5), RangeError)
})

t.test('Registry.changesSince answers from the durable changes only', async (t) => {
  const { registry, store } = await openCore({ changeLogSize: 3 })
  for (let i = 1; i <= 5; i++) await registerNow(registry, 'orders', `o-${i}`)
  t.equal(registry.changesSince(1), undefined, 'older than the retained history')
  t.same(revisions(registry.changesSince(2)), [3, 4, 5])
  t.same(registry.changesSince(5), [])
  t.equal(registry.changesSince(6), undefined, 'a since past the revision')

  store.hold()
  const pending = registry.register('orders', 'o-6', instanceBody())
  t.equal(registry.revision, 6, 'memory has the change')
  t.equal(registry.committedRevision, 5, 'the store does not yet')
  t.same(registry.changesSince(5), [], 'a change not yet durable is not replayed')
  t.same(registry.changesSince(6), [])
  store.release()
  await pending.committed
  t.equal(registry.committedRevision, 6)
  t.same(revisions(registry.changesSince(5)), [6])
})

t.test('listeners hear a change only once it is durable', async (t) => {
  const { registry, store, changes } = await openCore()
  store.hold()
  const reg = registry.register('orders', 'o-1', instanceBody())
  await Promise.resolve()
  t.equal(changes.length, 0)
  store.release()
  await reg.committed
  t.same(revisions(changes), [1])
})

t.test('ChangeLog with completeFrom answers across gaps without assuming contiguous revisions', async (t) => {
  // Cluster mode: etcd's revisions number the changes, with gaps for keys that are not
  // changes (leases, node announcements). The log says where it is complete instead.
  const log = new ChangeLog(3, 10)
  t.equal(log.completeFrom, 10)
  t.same(log.after(10, 10), [])
  t.equal(log.after(9, 12), undefined, 'before completeFrom: a snapshot')
  t.same(log.after(10, 12), [], 'complete and empty: nothing came after 10')
  for (const r of [14, 20, 31]) log.push(change(r))
  t.same(revisions(log.after(10, 31)), [14, 20, 31], 'the oldest is 14, yet 11..13 were not changes')
  t.same(revisions(log.after(12, 31)), [14, 20, 31])
  t.same(revisions(log.after(14, 31)), [20, 31])
  t.same(revisions(log.after(25, 31)), [31])
  t.equal(log.after(9, 31), undefined)

  log.push(change(40))
  t.equal(log.completeFrom, 14, 'dropping 14 moves completeness up to it')
  t.same(revisions(log.after(14, 40)), [20, 31, 40])
  t.same(revisions(log.after(17, 40)), [20, 31, 40], 'between the dropped one and the oldest held')
  t.equal(log.after(13, 40), undefined, 'change 14 is gone: a snapshot')

  log.reset(50)
  t.equal(log.size, 0)
  t.equal(log.completeFrom, 50)
  t.equal(log.after(40, 50), undefined, 'what came before a reset cannot be replayed')
  t.same(log.after(50, 55), [])
  log.push(change(51))
  t.same(revisions(log.after(50, 51)), [51])
})
