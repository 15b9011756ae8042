/**
 * The read commands: `rollcall services` and `rollcall instances <service>`.
 */
import type { InstancesResponse, ServicesResponse } from '../../client-sdk/protocol.js'
import type { Command } from './command.js'
import { CONNECTION_HELP, EXIT_OK, checkName, help, pairsFlag, parse, positionals, printJson, restFor } from './command.js'
import { address, ago, checkText, healthTint, statusTint, table } from './output.js'

/** `rollcall services`: every service with its counts. */
export const servicesCommand: Command = {
  name: 'services',
  help: `Usage: rollcall services [options]

Lists every service that has instances: how many, how many are routable (status up and
health passing), their zones, and the revision of the service's last change.

${CONNECTION_HELP}

Examples:
  rollcall services
  rollcall services --json | jq -r '.services[].name'`,
  async run(argv) {
    const p = parse(argv, {})
    if (p.help) return help(this)
    positionals(p, [])
    const rest = restFor(p)
    const { body } = await rest.request<ServicesResponse>('GET', '/v1/services')
    if (p.json) printJson(body)
    else if (body.services.length === 0) process.stdout.write(`no services registered (revision ${body.revision})\n`)
    else {
      const rows = body.services.map((s) => [
        s.name,
        String(s.instances),
        { text: String(s.routable), tint: s.routable === 0 ? ('red' as const) : s.routable < s.instances ? ('yellow' as const) : undefined },
        s.zones.join(',') || '-',
        String(s.revision),
      ])
      process.stdout.write(table(['SERVICE', 'INSTANCES', 'ROUTABLE', 'ZONES', 'REVISION'], rows))
      const total = body.services.reduce((n, s) => n + s.instances, 0)
      const routable = body.services.reduce((n, s) => n + s.routable, 0)
      process.stdout.write(
        `\n${plural(body.services.length, 'service')}, ${plural(total, 'instance')} (${routable} routable) at revision ${body.revision}\n`,
      )
    }
    return EXIT_OK
  },
}

/** `rollcall instances <service>`: one service's instances, filtered as the API filters. */
export const instancesCommand: Command = {
  name: 'instances',
  help: `Usage: rollcall instances <service> [options]

Lists the instances of <service>: address, status, health, zone, version, weight, tags,
when the last heartbeat the server knows of came, and the last active check result.

Filters (all must match):
  --healthy        routable instances only (status up and health passing)
  --tag TAG        instances with this tag; repeat for several
  --zone ZONE      instances in this zone
  --meta KEY=VALUE instances with this metadata; repeat for several

${CONNECTION_HELP}

Examples:
  rollcall instances orders --healthy --zone eu-1a
  rollcall instances orders --json | jq -r '.instances[] | "\\(.host):\\(.port)"'`,
  async run(argv) {
    const p = parse(argv, {
      healthy: { type: 'boolean' },
      tag: { type: 'string', multiple: true },
      zone: { type: 'string' },
      meta: { type: 'string', multiple: true },
    })
    if (p.help) return help(this)
    const [service] = positionals(p, ['service']) as [string]
    checkName(service, 'service')
    const query = new URLSearchParams()
    if (p.values.healthy === true) query.set('healthy', 'true')
    for (const tag of (p.values.tag as string[] | undefined) ?? []) query.append('tag', tag)
    if (p.values.zone !== undefined) query.set('zone', p.values.zone as string)
    for (const [k, v] of Object.entries(pairsFlag(p.values.meta, 'meta'))) query.append(`meta.${k}`, v)
    const qs = query.size > 0 ? `?${query}` : ''
    const rest = restFor(p)
    const { body } = await rest.request<InstancesResponse>('GET', `/v1/services/${service}/instances${qs}`)
    if (p.json) printJson(body)
    else if (body.instances.length === 0) {
      process.stdout.write(`no instances of ${service}${qs === '' ? '' : ' match'} (revision ${body.revision})\n`)
    } else {
      const now = Date.now()
      const rows = body.instances.map((i) => [
        i.id,
        address(i),
        { text: i.status, tint: statusTint(i.status) },
        { text: i.health, tint: healthTint(i.health) },
        i.zone ?? '-',
        i.version ?? '-',
        String(i.weight),
        i.tags.join(',') || '-',
        ago(i.lastHeartbeatAt, now),
        { text: checkText(i.lastCheck), tint: i.lastCheck === undefined ? undefined : i.lastCheck.ok ? ('green' as const) : ('red' as const) },
      ])
      process.stdout.write(
        table(['ID', 'ADDRESS', 'STATUS', 'HEALTH', 'ZONE', 'VERSION', 'WEIGHT', 'TAGS', 'HEARTBEAT', 'CHECK'], rows),
      )
    }
    return EXIT_OK
  },
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}
