import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

/** Where Debian's etcd-server puts etcd. */
export const ETCD = '/usr/bin/etcd'

/**
 * Fails loudly when etcd is missing: the cluster tests must run, not skip. CI installs it
 * (`.ci/run`); on a workstation: `apt-get install -y etcd-server`.
 */
export function requireEtcd(): string {
  if (!existsSync(ETCD)) {
    throw new Error(`${ETCD} is missing: install etcd-server (apt-get install -y etcd-server) to run the cluster tests`)
  }
  return ETCD
}

/** A port nothing listens on now, for a child process to bind. */
export async function freePort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  const port = (srv.address() as { port: number }).port
  await new Promise<void>((r) => srv.close(() => r()))
  return port
}

/** One etcd member: its client URL and process. */
export interface EtcdMember {
  name: string
  clientUrl: string
  child: ChildProcess
  exited: Promise<void>
}

/** A real etcd cluster on 127.0.0.1, with its data in a temporary folder. */
export interface EtcdCluster {
  members: EtcdMember[]
  /** Every member's client URL: what `--etcd-endpoints` takes. */
  endpoints: string[]
  /** kill -9 one member and wait until it is gone. */
  kill(index: number): Promise<void>
  /** Kills every member and removes the data (also done by teardown). */
  stop(): Promise<void>
}

type Teardown = { teardown(fn: () => unknown): void }

/**
 * Starts a `size`-member etcd cluster (Debian's etcd-server) on free 127.0.0.1 ports, each
 * member with a temporary data dir, and resolves once every member said it serves
 * clients (which a member of a new cluster does only once the cluster has a leader).
 * Teardown kills the members and removes the folder.
 */
export async function startEtcdCluster(t: Teardown, size = 3): Promise<EtcdCluster> {
  const bin = requireEtcd()
  const dir = mkdtempSync(join(tmpdir(), 'rollcall-etcd-'))
  const specs: Array<{ name: string; client: number; peer: number }> = []
  for (let i = 0; i < size; i++) specs.push({ name: `m${i}`, client: await freePort(), peer: await freePort() })
  const token = `rollcall-test-${process.pid}-${specs[0]?.client}`
  const initialCluster = specs.map((s) => `${s.name}=http://127.0.0.1:${s.peer}`).join(',')
  const members: EtcdMember[] = []
  const ready: Array<Promise<void>> = []
  for (const s of specs) {
    const clientUrl = `http://127.0.0.1:${s.client}`
    const peerUrl = `http://127.0.0.1:${s.peer}`
    const child = spawn(
      bin,
      [
        '--name', s.name,
        '--data-dir', join(dir, s.name),
        '--listen-client-urls', clientUrl,
        '--advertise-client-urls', clientUrl,
        '--listen-peer-urls', peerUrl,
        '--initial-advertise-peer-urls', peerUrl,
        '--initial-cluster', initialCluster,
        '--initial-cluster-state', 'new',
        '--initial-cluster-token', token,
        '--logger', 'zap',
        '--log-outputs', 'stderr',
        '--log-level', 'info',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    )
    const exited = new Promise<void>((r) => child.once('exit', () => r()))
    let log = ''
    ready.push(
      new Promise<void>((resolve, reject) => {
        const rl = createInterface({ input: child.stderr! })
        let done = false
        rl.on('line', (line) => {
          if (log.length < 20_000) log += line + '\n'
          if (!done && line.includes('serving client traffic')) {
            done = true
            resolve()
          }
        })
        void exited.then(() => {
          if (!done) reject(new Error(`etcd ${s.name} exited before serving:\n${log}`))
        })
      }),
    )
    members.push({ name: s.name, clientUrl, child, exited })
  }
  let stopped = false
  const stop = async () => {
    if (stopped) return
    stopped = true
    for (const m of members) if (m.child.exitCode === null && m.child.signalCode === null) m.child.kill('SIGKILL')
    await Promise.all(members.map((m) => m.exited))
    rmSync(dir, { recursive: true, force: true })
  }
  t.teardown(stop)
  // Should the test process die without its teardown, its etcd members die with it.
  process.once('exit', () => {
    for (const m of members) if (m.child.exitCode === null && m.child.signalCode === null) m.child.kill('SIGKILL')
  })
  try {
    await Promise.all(ready)
  } catch (err) {
    await stop()
    throw err
  }
  return {
    members,
    endpoints: members.map((m) => m.clientUrl),
    async kill(index) {
      const m = members[index] as EtcdMember
      m.child.kill('SIGKILL')
      await m.exited
    },
    stop,
  }
}

let prefixes = 0

/** A key prefix of its own for one test, so tests can share an etcd cluster. */
export function uniquePrefix(): string {
  return `/rollcall-test-${process.pid}-${++prefixes}`
}

/**
 * The flags that run a rollcall node over `cluster` (`--store etcd`), with a short session
 * TTL so a dead node leaves the election and the check rota within 2 s.
 */
export function clusterArgs(cluster: { endpoints: string[] }, prefix: string, sessionTtl = 2): string[] {
  return [
    '--store', 'etcd',
    '--etcd-endpoints', cluster.endpoints.join(','),
    '--etcd-prefix', prefix,
    '--etcd-session-ttl', String(sessionTtl),
  ]
}
