/**
 * `npm run bench`: what rollcall exists for, measured against its HTTP ceiling (a bare
 * Fastify server) and against etcd, in one run, as ratios, because the machine is shared
 * and noisy. Every figure is the median of several runs with min and max.
 *
 *   npm run bench                  the table
 *   npm run bench -- --json        the same figures as JSON (also written to bench/out/results.json)
 *   npm run bench -- --quick       one short run of each (a smoke test of the benchmark)
 *   npm run bench -- --only=heartbeat,push
 *   npm run bench -- --only=cluster   cluster mode: 1 and 3 nodes over one 3-member etcd cluster
 *
 * Servers and load generators are separate processes: the load never shares an event loop
 * with what it measures. Request logging is off (--log-level warn) in every server.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { runPickBench } from './pick.js'
import { EtcdBench, freePort } from './etcd.js'
import { startEtcdCluster } from './cluster.js'

const here = dirname(fileURLToPath(import.meta.url))
const root = resolve(here, '../..')
const MAIN = join(root, 'dist/server/main.js')
const args = process.argv.slice(2)
const asJson = args.includes('--json')
const quick = args.includes('--quick')
const only = args.find((a) => a.startsWith('--only='))?.slice(7).split(',')
const RUNS = quick ? 1 : 3
const SECONDS = quick ? 2 : 5
const CONNECTIONS = 100
const work = mkdtempSync(join(tmpdir(), 'rollcall-bench-'))

const want = (name: string) => only === undefined || only.includes(name)
const log = (line: string) => process.stderr.write(`${line}\n`)

/** median, min, max of some numbers. */
export interface Stat {
  median: number
  min: number
  max: number
}
const stat = (xs: number[]): Stat => {
  const s = [...xs].sort((a, b) => a - b)
  return { median: s[Math.floor((s.length - 1) / 2)] as number, min: s[0] as number, max: s[s.length - 1] as number }
}
const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number
}

interface Proc {
  child: ChildProcess
  url: string
  stop(): Promise<void>
}

async function waitReady(url: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    try {
      if ((await fetch(url + '/healthz')).ok) return
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`${url} did not come up`)
}

function stopper(child: ChildProcess): () => Promise<void> {
  return () =>
    new Promise((resolve) => {
      if (child.exitCode !== null) return resolve()
      child.once('exit', () => resolve())
      child.kill('SIGTERM')
    })
}

/** A rollcall server in its own process, with request logging off. */
async function startRollcall(db: string, extra: string[] = []): Promise<Proc> {
  const port = await freePort()
  const child = spawn(process.execPath, [MAIN, '--port', String(port), '--db', db, '--log-level', 'warn', ...extra], {
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const url = `http://127.0.0.1:${port}`
  await waitReady(url)
  return { child, url, stop: stopper(child) }
}

/** The bare Fastify server: the ceiling. */
async function startBare(): Promise<Proc> {
  const child = spawn(process.execPath, [join(here, 'bare-server.js')], { stdio: ['ignore', 'pipe', 'inherit'] })
  const [line] = (await new Promise((r) => createInterface({ input: child.stdout! }).once('line', (l) => r([l])))) as [string]
  const { address } = JSON.parse(line) as { address: string }
  return { child, url: address, stop: stopper(child) }
}

interface LoadResult {
  rps: number
  p50: number
  p99: number
  ok: number
  non2xx: number
  errors: number
}

/** Runs autocannon in its own process. */
async function load(spec: Record<string, unknown>): Promise<LoadResult> {
  const child = spawn(process.execPath, [join(here, 'load.js'), JSON.stringify({ seconds: SECONDS, connections: CONNECTIONS, ...spec })], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let out = ''
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  await new Promise((r) => child.once('exit', r))
  const result = JSON.parse(out.trim().split('\n').pop() as string) as LoadResult
  if (result.non2xx > 0 || result.errors > 0) log(`  (load ${String(spec.kind)}: ${result.non2xx} non-2xx, ${result.errors} errors)`)
  return result
}

/** Registers `count` instances over `services` services, `concurrency` requests at a time. */
async function fill(url: string, count: number, services: number, concurrency = 64): Promise<void> {
  let next = 0
  const body = JSON.stringify({ host: '10.0.0.1', port: 8080, ttlSeconds: 3600, zone: 'z1', tags: ['a'] })
  const worker = async () => {
    while (next < count) {
      const k = next++
      const res = await fetch(`${url}/v1/services/svc-${k % services}/instances/i-${k}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body,
      })
      if (!res.ok) throw new Error(`fill: ${res.status} ${await res.text()}`)
      await res.arrayBuffer()
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
}

const results: Record<string, unknown> = {}
const rows: Array<[string, string, string]> = []
const fmt = (s: Stat, digits = 0, unit = '') =>
  `${s.median.toFixed(digits)}${unit} (${s.min.toFixed(digits)}..${s.max.toFixed(digits)})`
const row = (figure: string, value: string, goal = '') => {
  rows.push([figure, value, goal])
  log(`  ${figure}: ${value}${goal ? `   [${goal}]` : ''}`)
}

async function heartbeats(etcd: EtcdBench | undefined): Promise<void> {
  log('1. heartbeats over 10,000 instances')
  const rc = await startRollcall(join(work, 'hb.db'))
  const bare = await startBare()
  await fill(rc.url, 10_000, 1000)
  const ours: number[] = []
  const ceiling: number[] = []
  const ratio: number[] = []
  const p99: number[] = []
  for (let r = 0; r < RUNS; r++) {
    const b = await load({ url: bare.url, kind: 'heartbeat', services: 1000, instances: 10_000 })
    const o = await load({ url: rc.url, kind: 'heartbeat', services: 1000, instances: 10_000 })
    ours.push(o.rps)
    ceiling.push(b.rps)
    ratio.push(o.rps / b.rps)
    p99.push(o.p99)
  }
  await rc.stop()
  await bare.stop()
  results.heartbeat = { rps: stat(ours), bareRps: stat(ceiling), ratioToBare: stat(ratio), p99Ms: stat(p99) }
  row('heartbeats/s', fmt(stat(ours)))
  row('bare Fastify 204/s (ceiling)', fmt(stat(ceiling)))
  row('heartbeat / ceiling', fmt(stat(ratio), 2), 'goal >= 0.9')
  if (etcd !== undefined) {
    const e = await etcd.keepalives(RUNS, (spec) => load(spec))
    results.etcdKeepalive = { rps: stat(e) }
    const x = stat(ours.map((o, i) => o / (e[i] ?? e[0] as number)))
    results.heartbeat = { ...(results.heartbeat as object), ratioToEtcd: x }
    row('etcd lease keepalives/s', fmt(stat(e)))
    row('heartbeat / etcd keepalive', fmt(x, 1), 'goal >= 5')
  }
}

async function registrations(etcd: EtcdBench | undefined): Promise<void> {
  log('2. registrations, each acknowledged after its commit')
  const bare = await startBare()
  const normal = await startRollcall(join(work, 'reg-normal.db'))
  const full = await startRollcall(join(work, 'reg-full.db'), ['--durability', 'full'])
  const n: number[] = []
  const f: number[] = []
  const b: number[] = []
  for (let r = 0; r < RUNS; r++) {
    b.push((await load({ url: bare.url, kind: 'post' })).rps)
    n.push((await load({ url: normal.url, kind: 'register', tag: `n${r}` })).rps)
    f.push((await load({ url: full.url, kind: 'register', tag: `f${r}` })).rps)
  }
  await Promise.all([bare.stop(), normal.stop(), full.stop()])
  const ratio = stat(n.map((x, i) => x / (b[i] as number)))
  results.registration = { rps: stat(n), fullRps: stat(f), bareRps: stat(b), ratioToBare: ratio }
  row('registrations/s (synchronous=normal)', fmt(stat(n)))
  row('registrations/s (--durability full)', fmt(stat(f)))
  row('bare Fastify JSON POST/s', fmt(stat(b)))
  row('registration / bare POST', fmt(ratio, 2), 'goal >= 0.5')
  if (etcd !== undefined) {
    const e = await etcd.puts(RUNS, (spec) => load(spec))
    const x = stat(n.map((o, i) => o / (e[i] ?? e[0] as number)))
    results.etcdPut = { rps: stat(e) }
    results.registration = { ...(results.registration as object), ratioToEtcd: x }
    row('etcd puts with a lease/s', fmt(stat(e)))
    row('registration / etcd put', fmt(x, 1), 'goal >= 2')
  }
}

async function lookups(): Promise<void> {
  log('3. lookups over 10,000 instances in 1,000 services')
  const rc = await startRollcall(join(work, 'lookup.db'))
  await fill(rc.url, 10_000, 1000)
  const rps: number[] = []
  const p99: number[] = []
  for (let r = 0; r < RUNS; r++) {
    const o = await load({ url: rc.url, kind: 'lookup', services: 1000 })
    rps.push(o.rps)
    p99.push(o.p99)
  }
  await rc.stop()
  results.lookup = { rps: stat(rps), p99Ms: stat(p99) }
  row('GET instances?healthy=true /s', fmt(stat(rps)))
  row('lookup p99', fmt(stat(p99), 1, ' ms'))
}

/**
 * Register-to-delivery latency to the last of `count` subscribers, who watch `watchUrl`
 * (another node of a cluster, or by default the one written to).
 */
async function pushLatency(
  url: string,
  count: number,
  changes: number,
  watchUrl = url,
): Promise<{ p50: number; p99: number; max: number }> {
  const child = spawn(process.execPath, [join(here, 'subscribers.js'), watchUrl, String(count)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const delivered = new Map<number, number>()
  const waiters = new Map<number, () => void>()
  let ready!: () => void
  const isReady = new Promise<void>((r) => (ready = r))
  child.on('message', (m: { type: string; revision?: number; last?: number; message?: string }) => {
    if (m.type === 'ready') ready()
    else if (m.type === 'delivered') {
      delivered.set(m.revision as number, m.last as number)
      waiters.get(m.revision as number)?.()
    } else if (m.type === 'error') log(`  subscriber error: ${m.message}`)
  })
  await isReady
  const latencies: number[] = []
  for (let i = 0; i < changes; i++) {
    const sentAt = performance.timeOrigin + performance.now()
    const res = await fetch(`${url}/v1/services/push/instances/p-${i % 20}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ host: '10.0.0.1', port: 8080, weight: i % 1000 }),
    })
    const { revision } = (await res.json()) as { revision: number }
    if (!delivered.has(revision)) await new Promise<void>((r) => waiters.set(revision, r))
    latencies.push((delivered.get(revision) as number) - sentAt)
    waiters.delete(revision)
  }
  child.send({ type: 'close' })
  await new Promise((r) => child.once('exit', r))
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: Math.max(...latencies) }
}

async function push(etcd: EtcdBench | undefined): Promise<void> {
  log('4. push: register-to-delivery latency to the last subscriber')
  const out: Record<string, unknown> = {}
  for (const [count, changes] of [
    [1, quick ? 50 : 300],
    [1000, quick ? 30 : 200],
    [10_000, quick ? 10 : 50],
  ] as const) {
    const p50: number[] = []
    const p99: number[] = []
    const max: number[] = []
    for (let r = 0; r < RUNS; r++) {
      const rc = await startRollcall(join(work, `push-${count}-${r}.db`))
      const l = await pushLatency(rc.url, count, changes)
      await rc.stop()
      p50.push(l.p50)
      p99.push(l.p99)
      max.push(l.max)
    }
    out[String(count)] = { p50Ms: stat(p50), p99Ms: stat(p99), maxMs: stat(max) }
    const goal = count === 1000 ? 'goal p99 < 25 ms' : count === 10_000 ? 'goal: all within 250 ms' : ''
    row(`push to ${count} subscriber(s) p50 / p99 / max`, `${fmt(stat(p50), 1)} / ${fmt(stat(p99), 1)} / ${fmt(stat(max), 1)} ms`, goal)
  }
  results.push = out
  if (etcd !== undefined) {
    const e = await etcd.watchLatency(RUNS, quick ? 50 : 300)
    results.etcdWatch = { p50Ms: stat(e.map((x) => x.p50)), p99Ms: stat(e.map((x) => x.p99)) }
    const one = out['1'] as { p50Ms: Stat }
    row('etcd put-to-watch p50 / p99', `${fmt(stat(e.map((x) => x.p50)), 2)} / ${fmt(stat(e.map((x) => x.p99)), 2)} ms`)
    row('push p50: rollcall / etcd (lower is better)', (one.p50Ms.median / stat(e.map((x) => x.p50)).median).toFixed(2))
  }
}

async function scale(): Promise<void> {
  log('5. scale: 100,000 instances across 1,000 services')
  const db = join(work, 'scale.db')
  const rc = await startRollcall(db)
  await fill(rc.url, quick ? 20_000 : 100_000, 1000, 128)
  const status = readFileSync(`/proc/${rc.child.pid}/status`, 'utf8')
  const rssMb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]) / 1024
  await rc.stop()
  const restore: number[] = []
  const rssAfter: number[] = []
  for (let r = 0; r < RUNS; r++) {
    const port = await freePort()
    const child = spawn(process.execPath, [MAIN, '--port', String(port), '--db', db, '--log-level', 'info'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const line = await new Promise<string>((resolveLine) => {
      const rl = createInterface({ input: child.stdout! })
      rl.on('line', (l) => l.includes('rollcall listening') && resolveLine(l))
    })
    restore.push((JSON.parse(line) as { restoreMs: number }).restoreMs)
    rssAfter.push(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1]) / 1024)
    await stopper(child)()
  }
  results.scale = { instances: quick ? 20_000 : 100_000, rssMb, restoredRssMb: stat(rssAfter), restoreMs: stat(restore) }
  row('RSS holding them (after registering)', `${rssMb.toFixed(0)} MB`, 'goal < 150 MB')
  row('RSS after a restore', fmt(stat(rssAfter), 0, ' MB'))
  row('restore from SQLite at start', fmt(stat(restore), 0, ' ms'), 'goal < 1 s')
}

/**
 * Cluster mode: heartbeats/s and push latency with 1 and with 3 rollcall nodes over the
 * same 3-member etcd cluster. With 3 nodes the load is spread over all of them (one load
 * process each) and a change is written through one node and pushed by another.
 */
async function clusterFigures(): Promise<void> {
  log('7. cluster mode: 1 and 3 nodes over one 3-member etcd cluster')
  const etcd = await startEtcdCluster(work, log)
  if (etcd === undefined) return
  const out: Record<string, unknown> = {}
  const instances = quick ? 500 : 2000
  try {
    for (const size of [1, 3]) {
      const prefix = `/bench-${size}`
      const nodes: Proc[] = []
      for (let i = 0; i < size; i++) {
        const args = ['--store', 'etcd', '--etcd-endpoints', etcd.endpoints.join(','), '--etcd-prefix', prefix]
        nodes.push(await startRollcall(join(work, `cluster-${size}-${i}.db`), args))
      }
      await fill(nodes[0]!.url, instances, 100)
      const rps: number[] = []
      const p99: number[] = []
      for (let r = 0; r < RUNS; r++) {
        const each = await Promise.all(
          nodes.map((n) =>
            load({ url: n.url, kind: 'heartbeat', services: 100, instances, connections: Math.ceil(CONNECTIONS / size) }),
          ),
        )
        rps.push(each.reduce((sum, x) => sum + x.rps, 0))
        p99.push(Math.max(...each.map((x) => x.p99)))
      }
      const p50s: number[] = []
      const p99s: number[] = []
      for (let r = 0; r < RUNS; r++) {
        const l = await pushLatency(nodes[0]!.url, 1, quick ? 50 : 200, nodes[size - 1]!.url)
        p50s.push(l.p50)
        p99s.push(l.p99)
      }
      await Promise.all(nodes.map((n) => n.stop()))
      out[String(size)] = { heartbeatRps: stat(rps), heartbeatP99Ms: stat(p99), pushP50Ms: stat(p50s), pushP99Ms: stat(p99s) }
      const label = size === 1 ? '1 node' : `${size} nodes`
      row(`cluster, ${label}: heartbeats/s (etcd keepalives)`, fmt(stat(rps)))
      row(`cluster, ${label}: heartbeat p99`, fmt(stat(p99), 1, ' ms'))
      row(
        `cluster, ${label}: push p50 / p99${size > 1 ? ' (written via one node, pushed by another)' : ''}`,
        `${fmt(stat(p50s), 1)} / ${fmt(stat(p99s), 1)} ms`,
      )
    }
  } finally {
    await etcd.stop()
  }
  results.cluster = out
}

async function picks(): Promise<void> {
  log('6. SDK pick() with 100 instances')
  const figures = await runPickBench()
  results.pick = figures
  for (const f of figures) row(`pick() ${f.balancer}`, fmt(f.nsPerPick, 0, ' ns'), 'goal < 500 ns')
}

async function main(): Promise<void> {
  log(`rollcall benchmark: ${cpus().length} cores, Node ${process.version}, ${new Date().toISOString()}, ${RUNS} run(s) of ${SECONDS} s`)
  let etcd: EtcdBench | undefined
  if (want('heartbeat') || want('registration') || want('push')) {
    etcd = await EtcdBench.start(work, log)
  }
  try {
    if (want('heartbeat')) await heartbeats(etcd)
    if (want('registration')) await registrations(etcd)
    if (want('lookup')) await lookups()
    if (want('push')) await push(etcd)
    if (want('scale')) await scale()
    if (want('pick')) await picks()
    if (want('cluster')) await clusterFigures()
  } finally {
    await etcd?.stop()
    rmSync(work, { recursive: true, force: true })
  }
  const machine = { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version, date: new Date().toISOString(), runs: RUNS, seconds: SECONDS }
  const doc = { machine, results }
  mkdirSync(join(root, 'bench/out'), { recursive: true })
  writeFileSync(join(root, 'bench/out/results.json'), JSON.stringify(doc, null, 2))
  if (asJson) {
    process.stdout.write(JSON.stringify(doc, null, 2) + '\n')
    return
  }
  const w0 = Math.max(...rows.map((r) => r[0].length))
  const w1 = Math.max(...rows.map((r) => r[1].length))
  process.stdout.write(`\nrollcall benchmark — ${machine.cores} cores (${machine.cpu}), Node ${machine.node}, ${machine.date}\n`)
  process.stdout.write(`median (min..max) of ${RUNS} run(s) of ${SECONDS} s; ratios measured in the same run\n\n`)
  process.stdout.write(`| ${'figure'.padEnd(w0)} | ${'value'.padEnd(w1)} | goal |\n|${'-'.repeat(w0 + 2)}|${'-'.repeat(w1 + 2)}|------|\n`)
  for (const [a, b, c] of rows) process.stdout.write(`| ${a.padEnd(w0)} | ${b.padEnd(w1)} | ${c} |\n`)
}

await main()
