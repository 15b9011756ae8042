#!/usr/bin/env node
/**
 * The `rollcall` command: the server (`rollcall serve`) and the tools ops scripts and
 * people use against it. Exit codes: 0 ok, 1 error, 2 usage.
 *
 * @example
 * ```sh
 * rollcall serve --port 7733
 * rollcall instances orders --healthy --json
 * rollcall drain orders o-1
 * ```
 */
import type { Command } from './cli/command.js'
import { CliError, EXIT_ERROR, EXIT_OK, EXIT_USAGE, UsageError, describeError } from './cli/command.js'

/**
 * Every command, loaded only when it runs: `rollcall services` does not pay for loading
 * the server (Fastify, SQLite), nor `rollcall serve` for the client tools.
 */
const COMMANDS: ReadonlyArray<{ name: string; summary: string; load: () => Promise<Command> }> = [
  { name: 'serve', summary: 'run the registry server', load: async () => (await import('./cli/serve.js')).serveCommand },
  {
    name: 'services',
    summary: 'list every service: instances, routable, zones',
    load: async () => (await import('./cli/services.js')).servicesCommand,
  },
  {
    name: 'instances',
    summary: "list one service's instances (--healthy, --tag, --zone, --meta)",
    load: async () => (await import('./cli/services.js')).instancesCommand,
  },
  {
    name: 'register',
    summary: 'register an instance and keep it alive until Ctrl-C, then deregister it',
    load: async () => (await import('./cli/instance.js')).registerCommand,
  },
  { name: 'deregister', summary: 'remove an instance now', load: async () => (await import('./cli/instance.js')).deregisterCommand },
  {
    name: 'drain',
    summary: 'set an instance draining: registered, but no new traffic',
    load: async () => (await import('./cli/instance.js')).drainCommand,
  },
  {
    name: 'watch',
    summary: 'print changes as they happen (all services, or the ones named)',
    load: async () => (await import('./cli/watch.js')).watchCommand,
  },
  { name: 'token', summary: 'create, list and revoke API tokens', load: async () => (await import('./cli/token.js')).tokenCommand },
]

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length))
  return `Usage: rollcall <command> [options]

rollcall is a service registry. Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Every command takes --help. The client commands take --url (ROLLCALL_URL, default
http://127.0.0.1:7733), --token (ROLLCALL_TOKEN) and --json.
Exit codes: 0 ok, 1 error (the server refused, or cannot be reached), 2 usage.
`
}

/** Runs one command line; resolves with the exit code. */
export async function cli(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined) {
    process.stderr.write(usage())
    return EXIT_USAGE
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    const topic = COMMANDS.find((c) => c.name === rest[0])
    process.stdout.write(topic === undefined ? usage() : `${(await topic.load()).help}\n`)
    return EXIT_OK
  }
  const entry = COMMANDS.find((c) => c.name === name)
  if (entry === undefined) {
    process.stderr.write(`rollcall: unknown command ${JSON.stringify(name)}\n\n${usage()}`)
    return EXIT_USAGE
  }
  const command = await entry.load()
  try {
    return await command.run(rest)
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`rollcall ${command.name}: ${err.message}\nRun 'rollcall ${command.name} --help' for usage.\n`)
      return EXIT_USAGE
    }
    process.stderr.write(`rollcall ${command.name}: ${err instanceof CliError ? err.message : describeError(err)}\n`)
    return EXIT_ERROR
  }
}

process.exitCode = await cli(process.argv.slice(2))
