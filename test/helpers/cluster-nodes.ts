import { join } from 'node:path'
import { pino } from 'pino'
import type { Config } from '../../server/config.js'
import type { RollcallDeps } from '../../server/server.js'
import type { ServerProcess } from './server.js'
import { spawnServer, startTestServer, tempDir } from './server.js'
import type { TestServer } from './server.js'
import { clusterArgs } from './etcd-cluster.js'

type Teardown = { teardown(fn: () => unknown): void }

/** The configuration of an in-process node over `endpoints` under `prefix`. */
export function clusterConfig(endpoints: string[], prefix: string, overrides: Partial<Config> = {}): Partial<Config> {
  return {
    store: 'etcd',
    etcdEndpoints: endpoints,
    etcdPrefix: prefix,
    etcdSessionTtl: 2,
    ...overrides,
  }
}

/** `n` rollcall nodes in this process over one etcd cluster, closed with the test. */
export async function startNodes(
  t: Teardown,
  endpoints: string[],
  prefix: string,
  n: number,
  overrides: Partial<Config> = {},
  deps: RollcallDeps = {},
): Promise<TestServer[]> {
  const nodes: TestServer[] = []
  for (let i = 0; i < n; i++) {
    nodes.push(
      await startTestServer(t, clusterConfig(endpoints, prefix, overrides), { logger: pino({ level: 'silent' }), ...deps }),
    )
  }
  return nodes
}

/**
 * One rollcall node as a child process (the built server), so a test can kill -9 it.
 * Teardown kills it if it still runs.
 */
export async function spawnNode(
  t: Teardown,
  cluster: { endpoints: string[] },
  prefix: string,
  extra: string[] = [],
): Promise<ServerProcess> {
  // A file of its own for what a node keeps locally (API tokens), in a temporary folder.
  const db = join(tempDir(t, 'rollcall-node-'), 'node.db')
  const sp = await spawnServer([...clusterArgs(cluster, prefix), '--db', db, ...extra])
  t.teardown(async () => {
    if (sp.child.exitCode === null && sp.child.signalCode === null) sp.child.kill('SIGKILL')
    await sp.exited
  })
  return sp
}
