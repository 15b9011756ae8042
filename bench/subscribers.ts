/**
 * Watch subscribers for the push benchmark, in a process of their own: opens `count`
 * WebSockets to GET /v1/watch subscribed to "*", reports `ready` to the parent over IPC
 * once every snapshot is in, then for every change reports when the first and the last
 * subscriber received it (epoch ms with microseconds, from performance.timeOrigin, which
 * both processes share). Frames are not parsed: the revision is read from the bytes.
 */
import WebSocket from 'ws'

const [url, countText] = process.argv.slice(2) as [string, string]
const count = Number(countText)
const PREFIX = Buffer.from('{"type":"change","revision":')
const now = () => performance.timeOrigin + performance.now()

const seen = new Map<number, { first: number; last: number; n: number }>()
let snapshots = 0

function onFrame(data: Buffer): void {
  if (!data.subarray(0, PREFIX.length).equals(PREFIX)) {
    if (++snapshots === count) process.send?.({ type: 'ready' })
    return
  }
  const end = data.indexOf(44, PREFIX.length) // ','
  const revision = Number(data.subarray(PREFIX.length, end).toString())
  const t = now()
  let s = seen.get(revision)
  if (s === undefined) {
    s = { first: t, last: t, n: 0 }
    seen.set(revision, s)
  }
  s.last = t
  if (++s.n === count) {
    process.send?.({ type: 'delivered', revision, first: s.first, last: s.last })
    seen.delete(revision)
  }
}

const sockets: WebSocket[] = []
let next = 0
function openNext(): void {
  if (next >= count) return
  const i = next++
  const ws = new WebSocket(url.replace(/^http/, 'ws') + '/v1/watch', { perMessageDeflate: false })
  ws.on('open', () => {
    ws.send('{"type":"subscribe","services":["*"]}')
    openNext()
  })
  ws.on('message', (data) => onFrame(data as Buffer))
  ws.on('error', (err) => process.send?.({ type: 'error', message: err.message }))
  sockets[i] = ws
}
// A few connections at a time, so the server's accept queue is not flooded.
for (let i = 0; i < Math.min(count, 50); i++) openNext()
process.on('message', (m: { type: string }) => {
  if (m.type === 'close') {
    for (const ws of sockets) ws?.terminate()
    process.exit(0)
  }
})
