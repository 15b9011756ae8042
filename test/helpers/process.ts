import { spawn } from 'node:child_process'
import { MAIN } from './server.js'

/** How a run of the built server ended, and all it wrote. */
export interface Finished {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/**
 * Runs `dist/server/main.js` with `args` until it exits on its own (a start that must fail).
 * ROLLCALL_ variables of the test's own environment are dropped, so only `env` counts.
 */
export function runToExit(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Finished> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ROLLCALL_')))
  const child = spawn(process.execPath, [MAIN, ...args], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
}

/** The JSON log lines among `lines` (pino writes one object per line). */
export function logEntries(lines: string[]): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = []
  for (const line of lines) {
    try {
      const v = JSON.parse(line) as unknown
      if (typeof v === 'object' && v !== null) out.push(v as Record<string, unknown>)
    } catch {
      // not a log line
    }
  }
  return out
}

/**
 * Resolves once a spawned server has exited and everything it wrote to stdout has been
 * read, so `lines` is complete.
 */
export async function exitedAndDrained(sp: {
  child: { stdout: NodeJS.ReadableStream | null }
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const stdout = sp.child.stdout as (NodeJS.ReadableStream & { readableEnded?: boolean }) | null
  const drained =
    stdout === null || stdout.readableEnded === true ? Promise.resolve() : new Promise<void>((r) => stdout.once('end', () => r()))
  const [result] = await Promise.all([sp.exited, drained])
  return result
}
