import { Name } from '../../client-sdk/protocol.js'
import { RegistryError } from '../registry/errors.js'

/** Longest wait of a blocking query, and the wait when `index` comes without one. */
export const MAX_WAIT_MS = 300_000
export const DEFAULT_WAIT_MS = 60_000

/** A filter over one service's instances, from `healthy`, `tag`, `zone` and `meta.K`. */
export interface InstanceFilter {
  healthy: boolean
  tags: string[]
  zone: string | undefined
  meta: Array<[string, string]>
}

/** `index` and `wait` of a blocking query; `index` undefined when the query does not block. */
export interface Blocking {
  index: number | undefined
  waitMs: number
}

const invalid = (field: string, why: string) => new RegistryError('VALIDATION_FAILED', `${field}: ${why}`)

/** A path name (service or instance id), or VALIDATION_FAILED naming the parameter. */
export function pathName(value: string | undefined, field: 'service' | 'id'): string {
  if (value === undefined || !Name.safeParse(value).success) {
    throw invalid(field, 'must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$')
  }
  return value
}

function one(query: Record<string, unknown>, key: string): string | undefined {
  const v = query[key]
  if (v === undefined) return undefined
  if (typeof v !== 'string') throw invalid(key, 'must be given once')
  return v
}

function many(query: Record<string, unknown>, key: string): string[] {
  const v = query[key]
  if (v === undefined) return []
  return typeof v === 'string' ? [v] : (v as string[])
}

/** Parses `30s`, `5m`, `500ms` or a bare number of seconds into milliseconds. */
export function parseWait(text: string): number {
  const m = /^(\d{1,7})(ms|s|m)?$/.exec(text)
  if (m === null) throw invalid('wait', 'must be a duration such as 30s, 5m or 500ms')
  const n = Number(m[1])
  const ms = m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000
  if (ms > MAX_WAIT_MS) throw invalid('wait', 'must be <= 300s')
  return ms
}

function parseBlocking(query: Record<string, unknown>): Blocking {
  const index = one(query, 'index')
  const wait = one(query, 'wait')
  if (index !== undefined && !/^\d{1,15}$/.test(index)) throw invalid('index', 'must be a non-negative integer')
  return {
    index: index === undefined ? undefined : Number(index),
    waitMs: wait === undefined ? DEFAULT_WAIT_MS : parseWait(wait),
  }
}

function rejectUnknown(query: Record<string, unknown>, known: (key: string) => boolean): void {
  for (const key of Object.keys(query)) {
    if (!known(key)) throw invalid(key, 'unknown query parameter')
  }
}

/** Routes that take no query parameters refuse any, as bodies refuse unknown fields. */
export function noQuery(query: Record<string, unknown>): void {
  rejectUnknown(query, () => false)
}

/** The query of GET /v1/services: only `index` and `wait`. */
export function servicesQuery(query: Record<string, unknown>): Blocking {
  rejectUnknown(query, (k) => k === 'index' || k === 'wait')
  return parseBlocking(query)
}

const INSTANCE_KEYS = new Set(['healthy', 'tag', 'zone', 'index', 'wait'])

/** The query of GET /v1/services/{service}/instances. */
export function instancesQuery(query: Record<string, unknown>): { filter: InstanceFilter; blocking: Blocking } {
  rejectUnknown(query, (k) => INSTANCE_KEYS.has(k) || k.startsWith('meta.'))
  const healthy = one(query, 'healthy')
  if (healthy !== undefined && healthy !== 'true' && healthy !== 'false') throw invalid('healthy', 'must be true or false')
  const tags = many(query, 'tag')
  for (const t of tags) if (t.length === 0 || t.length > 64) throw invalid('tag', 'must be 1 to 64 characters')
  const zone = one(query, 'zone')
  if (zone !== undefined && zone.length > 64) throw invalid('zone', 'must be at most 64 characters')
  const meta: Array<[string, string]> = []
  for (const key of Object.keys(query)) {
    if (!key.startsWith('meta.')) continue
    const name = key.slice(5)
    if (name.length === 0 || name.length > 128) throw invalid(key, 'metadata key must be 1 to 128 characters')
    for (const v of many(query, key)) meta.push([name, v])
  }
  return { filter: { healthy: healthy === 'true', tags, zone, meta }, blocking: parseBlocking(query) }
}
