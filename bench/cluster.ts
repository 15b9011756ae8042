/**
 * A 3-member etcd cluster on 127.0.0.1 for the cluster-mode figures (`--only=cluster`):
 * Debian's etcd-server, data in the benchmark's work folder, killed at the end.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { findEtcd, freePort } from './etcd.js'

export interface BenchEtcdCluster {
  endpoints: string[]
  stop(): Promise<void>
}

/** Starts `size` members and resolves once each serves clients; undefined without etcd. */
export async function startEtcdCluster(
  work: string,
  log: (line: string) => void,
  size = 3,
): Promise<BenchEtcdCluster | undefined> {
  const bin = findEtcd(log)
  if (bin === undefined) return undefined
  const specs: Array<{ name: string; client: number; peer: number }> = []
  for (let i = 0; i < size; i++) specs.push({ name: `c${i}`, client: await freePort(), peer: await freePort() })
  const initial = specs.map((s) => `${s.name}=http://127.0.0.1:${s.peer}`).join(',')
  const children: ChildProcess[] = []
  const ready: Array<Promise<void>> = []
  for (const s of specs) {
    const client = `http://127.0.0.1:${s.client}`
    const peer = `http://127.0.0.1:${s.peer}`
    // prettier-ignore
    const child = spawn(bin, [
      '--name', s.name, '--data-dir', join(work, `etcd-cluster-${s.name}`),
      '--listen-client-urls', client, '--advertise-client-urls', client,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
      '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', `bench-${process.pid}`,
      '--logger', 'zap', '--log-outputs', 'stderr', '--log-level', 'info',
    ], { stdio: ['ignore', 'ignore', 'pipe'] })
    children.push(child)
    ready.push(
      new Promise<void>((resolve, reject) => {
        const rl = createInterface({ input: child.stderr! })
        rl.on('line', (line) => line.includes('serving client traffic') && resolve())
        child.once('exit', () => reject(new Error(`etcd ${s.name} exited`)))
      }),
    )
  }
  const stop = async () => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((r) => {
            if (c.exitCode !== null || c.signalCode !== null) return r()
            c.once('exit', () => r())
            c.kill('SIGKILL')
          }),
      ),
    )
  }
  try {
    await Promise.all(ready)
  } catch (err) {
    await stop()
    throw err
  }
  log(`  etcd cluster: ${size} members`)
  return { endpoints: specs.map((s) => `http://127.0.0.1:${s.client}`), stop }
}
