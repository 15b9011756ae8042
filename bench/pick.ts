/**
 * Micro-benchmark of pick(): nanoseconds per call of each balancer over 100 instances, and
 * of a whole PickSet pick (candidate set plus balancer). Goal: under 500 ns.
 *
 * Each balancer is warmed up (so V8 has optimised `pick`), then timed over `calls` picks
 * in each of `runs` runs with `process.hrtime.bigint()`; the figure is the median run, with
 * the fastest and slowest. Run it after `npm run build` with `node dist/bench/pick.js`, or
 * call {@link runPickBench} from a bench runner.
 */
import { pathToFileURL } from 'node:url'
import { BALANCER_NAMES, WeightedBalancer, createBalancer } from '../client-sdk/balancers/index.js'
import type { Balancer } from '../client-sdk/balancers/index.js'
import { Endpoint } from '../client-sdk/endpoint.js'
import { PickSet } from '../client-sdk/pick-set.js'

/** One row of the results. */
export interface PickBenchResult {
  balancer: string
  nsPerPick: { median: number; min: number; max: number }
}

/** Options of {@link runPickBench}. */
export interface PickBenchOptions {
  /** Instances to balance over. Default 100. */
  instances?: number
  /** Timed picks per run. Default 2,000,000. */
  calls?: number
  /** Timed runs; the median is reported. Default 5. */
  runs?: number
  /** Untimed picks before the runs. Default 200,000. */
  warmup?: number
}

/** Ring-hash keys, cycled through: a realistic key per call without building strings in the loop. */
const KEYS = Array.from({ length: 4096 }, (_, i) => `user-${i * 7919}`)

function makeEndpoints(n: number): Endpoint[] {
  return Array.from(
    { length: n },
    (_, i) =>
      new Endpoint({
        id: `orders-${i}`,
        service: 'orders',
        host: `10.0.${i >> 8}.${i & 255}`,
        port: 8080,
        // Mixed weights and loads, so weighted and least-request do real work.
        weight: 50 + ((i * 37) % 151),
        zone: `z${i % 3}`,
      }),
  ).map((e, i) => {
    e.inFlight = (i * 13) % 7
    return e
  })
}

/** Picks `calls` times; returns a value derived from the picks so the loop cannot be optimised away. */
function loop(pick: (key?: string) => Endpoint | undefined, calls: number, keyed: boolean): number {
  let sink = 0
  if (keyed) {
    for (let i = 0; i < calls; i++) sink += (pick(KEYS[i & 4095]) as Endpoint).port
  } else {
    for (let i = 0; i < calls; i++) sink += (pick() as Endpoint).port
  }
  return sink
}

function measure(
  name: string,
  pick: (key?: string) => Endpoint | undefined,
  keyed: boolean,
  o: Required<PickBenchOptions>,
): PickBenchResult {
  let sink = loop(pick, o.warmup, keyed)
  const perRun: number[] = []
  for (let r = 0; r < o.runs; r++) {
    const start = process.hrtime.bigint()
    sink += loop(pick, o.calls, keyed)
    const ns = Number(process.hrtime.bigint() - start)
    perRun.push(ns / o.calls)
  }
  if (sink === -1) console.log(sink) // never true; keeps `sink` alive
  perRun.sort((a, b) => a - b)
  const round = (x: number) => Math.round(x * 10) / 10
  return {
    balancer: name,
    nsPerPick: {
      median: round(perRun[Math.floor(perRun.length / 2)] as number),
      min: round(perRun[0] as number),
      max: round(perRun[perRun.length - 1] as number),
    },
  }
}

/**
 * Runs the benchmark and returns one row per balancer, a row for the weighted balancer's
 * O(n) fallback, and `pick-set/<balancer>` rows for a whole PickSet pick (round-robin and
 * ring-hash) with a zone preference.
 */
export async function runPickBench(options: PickBenchOptions = {}): Promise<PickBenchResult[]> {
  const o: Required<PickBenchOptions> = {
    instances: options.instances ?? 100,
    calls: options.calls ?? 2_000_000,
    runs: options.runs ?? 5,
    warmup: options.warmup ?? 200_000,
  }
  const results: PickBenchResult[] = []
  for (const name of BALANCER_NAMES) {
    const balancer: Balancer = createBalancer(name)
    balancer.update(makeEndpoints(o.instances))
    results.push(measure(name, (key) => balancer.pick(key), name === 'ring-hash', o))
    // Yield between balancers so a runner's other work (and signals) are not starved.
    await new Promise((resolve) => setImmediate(resolve))
  }
  {
    // The weighted balancer's fallback for cycles too long to precompute: nginx's O(n) loop.
    const live = new WeightedBalancer({ maxPrecomputeWork: 0 })
    live.update(makeEndpoints(o.instances))
    results.push(measure('weighted (live loop)', () => live.pick(), false, o))
    await new Promise((resolve) => setImmediate(resolve))
  }
  for (const name of ['round-robin', 'ring-hash'] as const) {
    const set = new PickSet({ service: 'orders', balancer: name, zone: 'z1', now: Date.now })
    set.replaceAll(makeEndpoints(o.instances))
    results.push(measure(`pick-set/${name}`, (key) => set.pick(key), name === 'ring-hash', o))
    await new Promise((resolve) => setImmediate(resolve))
  }
  return results
}

/** Prints the results as a table. */
export function formatPickBench(results: readonly PickBenchResult[]): string {
  const lines = ['balancer                   ns/pick median      min      max']
  for (const r of results) {
    const { median, min, max } = r.nsPerPick
    lines.push(
      `${r.balancer.padEnd(26)} ${median.toFixed(1).padStart(14)} ${min.toFixed(1).padStart(8)} ${max.toFixed(1).padStart(8)}`,
    )
  }
  return lines.join('\n')
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const results = await runPickBench()
  console.log(`pick() over 100 instances, median of 5 runs of 2,000,000 calls (goal < 500 ns)\n`)
  console.log(formatPickBench(results))
  const slow = results.filter((r) => r.nsPerPick.median >= 500)
  if (slow.length > 0) console.log(`\nover the goal: ${slow.map((r) => r.balancer).join(', ')}`)
}
