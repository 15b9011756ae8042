/**
 * The same operations on etcd, the store Kubernetes and many registries use: Debian's
 * etcd-server (3.4) started on 127.0.0.1 by the benchmark itself, measured with the same
 * load generator through etcd's JSON gateway. When etcd is missing, the benchmark tries
 * `apt-get install -y etcd-server` once, says so, and skips this part if it cannot.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'

const b64 = (s: string) => Buffer.from(s).toString('base64')

/** A port nothing listens on now, for a child process to bind. */
export async function freePort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  const port = (srv.address() as { port: number }).port
  await new Promise<void>((r) => srv.close(() => r()))
  return port
}

/** Finds etcd, installing Debian's etcd-server if it is missing and apt-get can. */
export function findEtcd(log: (line: string) => void): string | undefined {
  for (const p of ['/usr/bin/etcd', '/usr/local/bin/etcd']) if (existsSync(p)) return p
  log('  etcd not found: trying `apt-get install -y etcd-server`')
  const r = spawnSync('sh', ['-c', 'apt-get install -y etcd-server || (apt-get update && apt-get install -y etcd-server)'], {
    stdio: 'ignore',
    timeout: 300_000,
  })
  if (r.status === 0 && existsSync('/usr/bin/etcd')) return '/usr/bin/etcd'
  log('  etcd could not be installed here: the etcd comparisons are skipped')
  return undefined
}

type Load = (spec: Record<string, unknown>) => Promise<{ rps: number }>

export class EtcdBench {
  readonly url: string
  readonly #child: ChildProcess

  private constructor(url: string, child: ChildProcess) {
    this.url = url
    this.#child = child
  }

  /** Starts a single-member etcd with its data in `work`; undefined when etcd cannot be had. */
  static async start(work: string, log: (line: string) => void): Promise<EtcdBench | undefined> {
    const bin = findEtcd(log)
    if (bin === undefined) return undefined
    const version = execFileSync(bin, ['--version']).toString().split('\n')[0]
    const client = await freePort()
    const peer = await freePort()
    const dir = join(work, 'etcd')
    mkdirSync(dir, { recursive: true })
    const url = `http://127.0.0.1:${client}`
    const child = spawn(
      bin,
      [
        '--name', 'bench',
        '--data-dir', dir,
        '--listen-client-urls', url,
        '--advertise-client-urls', url,
        '--listen-peer-urls', `http://127.0.0.1:${peer}`,
        '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
        '--initial-cluster', `bench=http://127.0.0.1:${peer}`,
        '--log-level', 'error',
      ],
      { stdio: 'ignore' },
    )
    for (let i = 0; i < 400; i++) {
      try {
        if ((await fetch(`${url}/health`)).ok) break
      } catch {
        // starting
      }
      await new Promise((r) => setTimeout(r, 25))
    }
    log(`  etcd: ${version} at ${url}`)
    return new EtcdBench(url, child)
  }

  async #post<T>(path: string, body: unknown): Promise<T> {
    const res = await fetch(this.url + path, { method: 'POST', body: JSON.stringify(body) })
    if (!res.ok) throw new Error(`etcd ${path}: ${res.status} ${await res.text()}`)
    return (await res.json()) as T
  }

  async #leases(n: number): Promise<string[]> {
    const ids: string[] = []
    for (let i = 0; i < n; i++) ids.push((await this.#post<{ ID: string }>('/v3/lease/grant', { TTL: 3600 })).ID)
    return ids
  }

  /** Lease keepalives per second, against our heartbeats. */
  async keepalives(runs: number, load: Load): Promise<number[]> {
    const leases = await this.#leases(1000)
    const out: number[] = []
    for (let r = 0; r < runs; r++) out.push((await load({ url: this.url, kind: 'etcd-keepalive', leases })).rps)
    return out
  }

  /** Puts with a lease per second, against our registrations. */
  async puts(runs: number, load: Load): Promise<number[]> {
    const leases = await this.#leases(100)
    const out: number[] = []
    for (let r = 0; r < runs; r++) out.push((await load({ url: this.url, kind: 'etcd-put', leases, tag: `e${r}` })).rps)
    return out
  }

  /** Put-to-watch latency to one watcher over the gateway's streaming watch. */
  async watchLatency(runs: number, changes: number): Promise<Array<{ p50: number; p99: number }>> {
    const out: Array<{ p50: number; p99: number }> = []
    for (let r = 0; r < runs; r++) {
      const prefix = `/watch-${r}/`
      const abort = new AbortController()
      const res = await fetch(`${this.url}/v3/watch`, {
        method: 'POST',
        body: JSON.stringify({ create_request: { key: b64(prefix), range_end: b64(`/watch-${r}0`) } }),
        signal: abort.signal,
      })
      const reader = res.body!.getReader()
      const decoder = new TextDecoder()
      let buffered = ''
      const arrivals = new Map<string, number>()
      let wake: (() => void) | undefined
      const pump = (async () => {
        for (;;) {
          const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }))
          if (done) return
          const now = performance.timeOrigin + performance.now()
          buffered += decoder.decode(value, { stream: true })
          let nl: number
          while ((nl = buffered.indexOf('\n')) >= 0) {
            const line = buffered.slice(0, nl)
            buffered = buffered.slice(nl + 1)
            const m = JSON.parse(line) as { result?: { events?: Array<{ kv: { key: string } }> } }
            for (const e of m.result?.events ?? []) arrivals.set(Buffer.from(e.kv.key, 'base64').toString(), now)
            wake?.()
          }
        }
      })()
      const latencies: number[] = []
      for (let i = 0; i < changes; i++) {
        const key = `${prefix}${i}`
        const sentAt = performance.timeOrigin + performance.now()
        await this.#post('/v3/kv/put', { key: b64(key), value: b64(`v${i}`) })
        while (!arrivals.has(key)) await new Promise<void>((resolve) => (wake = resolve))
        latencies.push((arrivals.get(key) as number) - sentAt)
      }
      abort.abort()
      await pump
      latencies.sort((a, b) => a - b)
      out.push({
        p50: latencies[Math.floor(latencies.length / 2)] as number,
        p99: latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))] as number,
      })
    }
    return out
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null) return
    await new Promise<void>((resolve) => {
      this.#child.once('exit', () => resolve())
      this.#child.kill('SIGTERM')
    })
  }
}
