#!/usr/bin/env node
/**
 * The rollcall server's entry point: configuration -> wiring -> listen -> signals. The
 * only module that reads the environment, listens and handles signals.
 */
import { ConfigError, loadConfig } from './config.js'
import type { Rollcall } from './server.js'
import { startRollcall } from './server.js'
import { SchemaTooNewError } from './store/migrations.js'

/** How long shutdown may take before the process exits anyway. */
const SHUTDOWN_GRACE_MS = 4500

export async function main(argv: string[]): Promise<void> {
  let server: Rollcall
  try {
    const config = loadConfig(argv, process.env)
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
}

await main(process.argv.slice(2))
