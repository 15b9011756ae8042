/**
 * `rollcall serve`: the server itself. {@link runServer} is the whole life of a server
 * process, configuration -> wiring -> listen -> signals, shared by `rollcall serve` and
 * `server/main.ts` (what `node dist/server/main.js` runs).
 */
import { ConfigError, describeSettings, loadConfig } from '../config.js'
import type { Rollcall } from '../server.js'
import { startRollcall } from '../server.js'
import { SchemaTooNewError } from '../store/migrations.js'
import type { Command } from './command.js'
import { help } from './command.js'

/** How long shutdown may take before the process exits anyway. */
const SHUTDOWN_GRACE_MS = 4500

/**
 * Runs the server with the settings in `argv` (flags) and the environment (ROLLCALL_
 * variables) until SIGTERM or SIGINT, then shuts down and exits 0. Exits 2 for a bad
 * setting (one line naming it), 1 when it cannot start or a shutdown fails. Resolves
 * once the server listens.
 */
export async function runServer(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<Rollcall> {
  let server: Rollcall
  try {
    const config = loadConfig(argv, env)
    server = await startRollcall(config)
  } catch (err) {
    if (err instanceof ConfigError || err instanceof SchemaTooNewError) {
      process.stderr.write(`rollcall: ${err.message}\n`)
      process.exit(2)
    }
    process.stderr.write(`rollcall: cannot start: ${(err as Error).message}\n`)
    process.exit(1)
  }

  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    server.logger.info({ signal }, 'shutting down')
    const force = setTimeout(() => {
      server.logger.error('shutdown took too long; exiting')
      process.exit(1)
    }, SHUTDOWN_GRACE_MS)
    force.unref()
    server.close().then(
      () => {
        server.logger.info('stopped')
        process.exit(0)
      },
      (err: unknown) => {
        server.logger.error({ err }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  server.registry.onFatal(() => {
    // Memory is ahead of the store: exit so a supervisor restarts from the durable state.
    server.logger.fatal('exiting after a store failure')
    setTimeout(() => process.exit(1), 100)
  })
  return server
}

function settingsHelp(): string {
  const rows = describeSettings().map((r) => ({ ...r, flag: r.bare ? r.flag : `${r.flag} VALUE` }))
  const width = Math.max(...rows.map((r) => r.flag.length))
  const envWidth = Math.max(...rows.map((r) => r.env.length))
  return rows.map((r) => `  ${r.flag.padEnd(width)}  ${r.env.padEnd(envWidth)}  default ${r.default}`).join('\n')
}

export const serveCommand: Command = {
  name: 'serve',
  get help() {
    return `Usage: rollcall serve [settings]

Runs the rollcall server until SIGTERM or SIGINT. Every setting is a flag or a ROLLCALL_
variable (the flag wins); a bad value exits 2 with one line naming the setting. Logs are
JSON lines on stdout. The web dashboard is at /ui, metrics at /metrics.

Settings:
${settingsHelp()}

Examples:
  rollcall serve --port 7733 --db /var/lib/rollcall/rollcall.db
  ROLLCALL_LOG_LEVEL=warn rollcall serve`
  },
  async run(argv) {
    if (argv.includes('--help') || argv.includes('-h')) return help(this)
    await runServer(argv)
    // Runs until a signal: the process exits from runServer's handlers, never from here.
    return new Promise<number>(() => undefined)
  },
}
