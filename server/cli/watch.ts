/**
 * `rollcall watch [service...]`: prints changes as the server pushes them, over the
 * WebSocket watch, resuming with `since` after a dropped connection.
 */
import WebSocket from 'ws'
import { Backoff } from '../../client-sdk/backoff.js'
import type { ChangeMessage, Instance, ServerMessage } from '../../client-sdk/protocol.js'
import { CLOSE_UNAUTHORIZED, ServerMessage as ServerMessageSchema } from '../../client-sdk/protocol.js'
import type { Command, Parsed } from './command.js'
import { CONNECTION_HELP, EXIT_ERROR, EXIT_OK, checkName, help, parse } from './command.js'
import { address, healthTint, paint, statusTint } from './output.js'

export const watchCommand: Command = {
  name: 'watch',
  help: `Usage: rollcall watch [service...] [options]

Subscribes to the named services (every service when none is named) and prints the
current state, then every change as the server pushes it: registrations, status and
health transitions, updates and removals. If the connection drops it reconnects and
resumes where it left off, so no change is missed. Runs until Ctrl-C (exit 0); exits 1
if the server cannot be reached at start.

${CONNECTION_HELP.replace('machine-readable output', 'every message as one line of JSON (NDJSON)')}

Examples:
  rollcall watch
  rollcall watch orders billing --json | jq -c 'select(.type == "change")'`,
  async run(argv) {
    const p = parse(argv, {})
    if (p.help) return help(this)
    for (const s of p.positionals) checkName(s, 'service')
    const services = p.positionals.length === 0 ? ['*'] : p.positionals
    return new Watcher(p, services).run()
  },
}

/**
 * One watch session: connects, subscribes, prints, and reconnects with backoff and
 * `since` when the socket drops (as the SDK's WatchConnection, which watches named
 * services only; this one also takes "*").
 */
class Watcher {
  readonly #p: Parsed
  readonly #services: string[]
  /** What the printed state holds, to say what a change changed. */
  readonly #known = new Map<string, Instance>()
  readonly #backoff = new Backoff({ initialMs: 200, maxMs: 10_000 })
  #revision = -1
  #ws: WebSocket | undefined
  #everOpen = false
  #stopped = false
  #timer: NodeJS.Timeout | undefined
  #finish: (code: number) => void = () => undefined

  constructor(p: Parsed, services: string[]) {
    this.#p = p
    this.#services = services
  }

  run(): Promise<number> {
    const done = new Promise<number>((resolve) => (this.#finish = resolve))
    const onSignal = () => this.#end(EXIT_OK)
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
    this.#connect()
    return done.finally(() => {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
    })
  }

  #end(code: number, message?: string): void {
    if (this.#stopped) return
    this.#stopped = true
    clearTimeout(this.#timer)
    if (message !== undefined) process.stderr.write(`rollcall: ${message}\n`)
    this.#ws?.terminate()
    this.#finish(code)
  }

  #connect(): void {
    const url = `${this.#p.url.replace(/^http/, 'ws')}/v1/watch`
    const headers = this.#p.token === undefined ? {} : { authorization: `Bearer ${this.#p.token}` }
    const ws = new WebSocket(url, { headers, perMessageDeflate: false })
    this.#ws = ws
    let opened = false
    let refused: string | undefined
    ws.on('open', () => {
      opened = true
      const resume = this.#revision >= 0
      if (this.#everOpen) process.stderr.write(`rollcall: reconnected; resuming after revision ${this.#revision}\n`)
      this.#everOpen = true
      ws.send(JSON.stringify({ type: 'subscribe', services: this.#services, ...(resume && { since: this.#revision }) }))
    })
    ws.on('message', (data) => this.#receive(data.toString()))
    ws.on('unexpected-response', (_req, res) => {
      refused = `the server refused the watch with HTTP ${res.statusCode}`
      res.resume()
      ws.terminate()
    })
    ws.on('error', (err) => {
      refused ??= err.message
    })
    ws.on('close', (code, reason) => {
      if (this.#stopped || this.#ws !== ws) return
      this.#ws = undefined
      if (code === CLOSE_UNAUTHORIZED) return this.#end(EXIT_ERROR, `the server closed the watch: ${reason.toString() || 'unauthorized'}`)
      if (!this.#everOpen) return this.#end(EXIT_ERROR, `cannot watch ${url}: ${refused ?? `closed (${code})`}`)
      const why = opened ? `connection closed (${code}${reason.length > 0 ? ` ${reason.toString()}` : ''})` : (refused ?? 'cannot connect')
      const delay = this.#backoff.next()
      process.stderr.write(`rollcall: ${why}; reconnecting in ${Math.round(delay)}ms\n`)
      this.#timer = setTimeout(() => this.#connect(), delay)
    })
  }

  #receive(text: string): void {
    let m: ServerMessage
    try {
      m = ServerMessageSchema.parse(JSON.parse(text))
    } catch {
      process.stderr.write(`rollcall: ignoring a frame that is not a watch message: ${text.slice(0, 200)}\n`)
      return
    }
    this.#backoff.reset()
    if (this.#p.json) process.stdout.write(`${text}\n`)
    switch (m.type) {
      case 'snapshot':
        this.#snapshot(m.revision, m.services)
        break
      case 'change':
        this.#change(m)
        break
      case 'error':
        if (m.error.code === 'UNAUTHENTICATED' || m.error.code === 'FORBIDDEN') {
          return this.#end(EXIT_ERROR, `${m.error.message} (${m.error.code})`)
        }
        if (!this.#p.json) process.stderr.write(`rollcall: the server says: ${m.error.message} (${m.error.code})\n`)
        break
      default: {
        const never: never = m
        throw new Error(`unknown message ${String(never)}`)
      }
    }
  }

  #snapshot(revision: number, services: Record<string, Instance[]>): void {
    this.#revision = revision
    // A snapshot is the whole state of what was subscribed: forget what it replaces.
    this.#known.clear()
    const lines: string[] = []
    for (const [service, list] of Object.entries(services).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      for (const i of [...list].sort((a, b) => (a.id < b.id ? -1 : 1))) {
        this.#known.set(key(i), i)
        lines.push(`  ${service}/${i.id}  ${describe(i)}`)
      }
    }
    if (this.#p.json) return
    const count = this.#known.size
    out(`${stamp()}  snapshot  rev ${revision}  ${count} instance${count === 1 ? '' : 's'}${count > 0 ? ':' : ''}`)
    for (const line of lines) out(line)
  }

  #change(m: ChangeMessage): void {
    this.#revision = m.revision
    const k = key(m.instance)
    const before = this.#known.get(k)
    if (m.op === 'delete') this.#known.delete(k)
    else this.#known.set(k, m.instance)
    if (this.#p.json) return
    const name = `${m.service}/${m.instance.id}`
    const what =
      m.op === 'delete'
        ? paint('removed', 'red')
        : before === undefined
          ? `${paint('registered', 'green')}  ${describe(m.instance)}`
          : differences(before, m.instance) || 'updated'
    out(`${stamp()}  rev ${m.revision}  ${name}  ${what}`)
  }
}

function out(line: string): void {
  process.stdout.write(`${line}\n`)
}

function key(i: Instance): string {
  return `${i.service}/${i.id}`
}

/** `up passing 10.0.0.7:8080 zone eu-1a v1.2 w100 [canary]`. */
function describe(i: Instance): string {
  const parts = [paint(i.status, statusTint(i.status)), paint(i.health, healthTint(i.health)), address(i)]
  if (i.zone !== undefined) parts.push(`zone ${i.zone}`)
  if (i.version !== undefined) parts.push(`version ${i.version}`)
  if (i.weight !== 100) parts.push(`weight ${i.weight}`)
  if (i.tags.length > 0) parts.push(`tags ${i.tags.join(',')}`)
  return parts.join(' ')
}

/** What changed between two versions of an instance: `health passing -> critical, weight 100 -> 0`. */
function differences(a: Instance, b: Instance): string {
  const out: string[] = []
  const diff = (what: string, x: string, y: string, tint?: (v: string) => string) => {
    if (x !== y) out.push(`${what} ${x} -> ${tint === undefined ? y : tint(y)}`)
  }
  diff('status', a.status, b.status, (v) => paint(v, statusTint(v as Instance['status'])))
  diff('health', a.health, b.health, (v) => paint(v, healthTint(v as Instance['health'])))
  diff('address', address(a), address(b))
  diff('weight', String(a.weight), String(b.weight))
  diff('zone', a.zone ?? '-', b.zone ?? '-')
  diff('version', a.version ?? '-', b.version ?? '-')
  diff('tags', a.tags.join(',') || '-', b.tags.join(',') || '-')
  if (JSON.stringify(a.metadata) !== JSON.stringify(b.metadata)) out.push('metadata changed')
  if (JSON.stringify(a.check) !== JSON.stringify(b.check)) out.push('check changed')
  if (out.length === 0 && a.ttlSeconds !== b.ttlSeconds) out.push(`ttl ${a.ttlSeconds}s -> ${b.ttlSeconds}s`)
  return out.join(', ')
}

/** The local time of day, `14:03:07`, for people following along. */
function stamp(): string {
  return new Date().toTimeString().slice(0, 8)
}
