/**
 * Output for people: aligned tables, short relative times, and colour for health and
 * status when stdout is a terminal (never in a pipe, never with NO_COLOR set).
 */
import type { CheckResult, Instance } from '../../client-sdk/protocol.js'

/** Whether to colour: a terminal, and no NO_COLOR (https://no-color.org). */
export const COLOR = process.stdout.isTTY === true && (process.env.NO_COLOR ?? '') === '' && process.env.TERM !== 'dumb'

const CODES = { green: 32, red: 31, yellow: 33, gray: 90, bold: 1 } as const
type Tint = keyof typeof CODES

/** `text` in a colour, when colouring. */
export function paint(text: string, tint: Tint | undefined): string {
  return COLOR && tint !== undefined ? `\x1b[${CODES[tint]}m${text}\x1b[0m` : text
}

/** A table cell: its text, and optionally a colour applied after padding (widths count plain text). */
export type Cell = string | { text: string; tint?: Tint | undefined }

/**
 * Renders rows under a header, columns padded to their widest cell, two spaces apart; the
 * last column is not padded, so lines carry no trailing blanks.
 */
export function table(header: string[], rows: Cell[][]): string {
  const text = (c: Cell) => (typeof c === 'string' ? c : c.text)
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => text(r[i] ?? '').length)))
  const line = (cells: Cell[], head: boolean) =>
    cells
      .map((c, i) => {
        const t = text(c)
        const padded = i === cells.length - 1 ? t : t.padEnd(widths[i] as number)
        return head ? paint(padded, 'bold') : paint(padded, typeof c === 'string' ? undefined : c.tint)
      })
      .join('  ')
      .trimEnd()
  return [line(header, true), ...rows.map((r) => line(r, false))].join('\n') + '\n'
}

/** `12s ago`, `5m ago`, `3h ago`, `2d ago`; `in 4s` for a time ahead. */
export function ago(iso: string | undefined, now = Date.now()): string {
  if (iso === undefined) return '-'
  const at = Date.parse(iso)
  if (Number.isNaN(at)) return '-'
  const ms = now - at
  const s = Math.round(Math.abs(ms) / 1000)
  const span = s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m` : s < 86_400 ? `${Math.floor(s / 3600)}h` : `${Math.floor(s / 86_400)}d`
  return ms >= 0 ? `${span} ago` : `in ${span}`
}

/** The colour of a health. */
export function healthTint(health: Instance['health']): Tint {
  return health === 'passing' ? 'green' : health === 'critical' ? 'red' : 'yellow'
}

/** The colour of a status: `up` plain, the others call for attention. */
export function statusTint(status: Instance['status']): Tint | undefined {
  return status === 'up' ? undefined : status === 'out_of_service' ? 'gray' : 'yellow'
}

/** `ok 200 3ms`, `fail ECONNREFUSED 1ms`, or `-` without a result. */
export function checkText(r: CheckResult | undefined): string {
  if (r === undefined) return '-'
  const what = r.ok ? `ok${r.statusCode !== undefined ? ` ${r.statusCode}` : ''}` : `fail ${r.error ?? (r.statusCode !== undefined ? `status ${r.statusCode}` : '')}`.trimEnd()
  return `${what} ${Math.round(r.durationMs)}ms`
}

/** `host:port`, with `scheme://` in front when it is not plain http. */
export function address(i: Pick<Instance, 'host' | 'port' | 'scheme'>): string {
  return i.scheme === 'http' ? `${i.host}:${i.port}` : `${i.scheme}://${i.host}:${i.port}`
}
