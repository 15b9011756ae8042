import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { pino } from 'pino'
import type { Config } from '../../server/config.js'
import { defaultConfig } from '../../server/config.js'
import type { Rollcall, RollcallDeps } from '../../server/server.js'
import { startRollcall } from '../../server/server.js'

/** A fresh temporary folder, removed by `t.teardown`. */
export function tempDir(t: { teardown(fn: () => unknown): void }, prefix = 'rollcall-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

export interface TestServer extends Rollcall {
  dbPath: string
  /** `fetch` against the server, with a JSON body when `json` is given. */
  request(method: string, path: string, json?: unknown, headers?: Record<string, string>): Promise<Response>
}

/**
 * Starts the real server in this process on 127.0.0.1 port 0 with a temporary SQLite file,
 * and closes it with the test.
 */
export async function startTestServer(
  t: { teardown(fn: () => unknown): void },
  overrides: Partial<Config> = {},
  deps: RollcallDeps = {},
): Promise<TestServer> {
  const dbPath = overrides.db ?? join(tempDir(t), 'rollcall.db')
  const config: Config = { ...defaultConfig(), port: 0, logLevel: 'silent', ...overrides, db: dbPath }
  const server = await startRollcall(config, { logger: pino({ level: 'silent' }), ...deps })
  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    await server.close()
  }
  t.teardown(close)
  return {
    ...server,
    close,
    dbPath,
    request: (method, path, json, headers = {}) =>
      fetch(server.url + path, {
        method,
        headers: json === undefined ? headers : { 'content-type': 'application/json', ...headers },
        ...(json !== undefined && { body: typeof json === 'string' ? json : JSON.stringify(json) }),
      }),
  }
}

export interface ServerProcess {
  child: ChildProcess
  url: string
  /** Every line the process wrote to stdout so far. */
  lines: string[]
  /** Resolves with the exit code (or signal) once the process ends. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

export const MAIN = resolve(import.meta.dirname, '../../dist/server/main.js')

/**
 * Starts the built server (`dist/server/main.js`, as `npm start` does) in a child process
 * and resolves once it logged the address it listens on.
 */
export function spawnServer(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, [MAIN, ...args], {
    env: { ...process.env, ROLLCALL_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const lines: string[] = []
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.once('exit', (code, signal) => res({ code, signal })),
  )
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()))
  return new Promise((resolvePromise, reject) => {
    const rl = createInterface({ input: child.stdout! })
    rl.on('line', (line) => {
      lines.push(line)
      try {
        const entry = JSON.parse(line) as { msg?: string; address?: string }
        if (entry.msg === 'rollcall listening' && entry.address !== undefined) {
          resolvePromise({ child, url: entry.address, lines, exited })
        }
      } catch {
        // not a log line
      }
    })
    void exited.then(({ code }) => reject(new Error(`server exited with ${code} before listening: ${stderr}`)))
  })
}

/** Registration body with sensible defaults. */
export function instanceBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { host: '127.0.0.1', port: 8080, ...overrides }
}
