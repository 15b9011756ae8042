import { request as httpRequest } from 'node:http'
import type { Test } from 'tap'
import { ErrorBody } from '../../client-sdk/protocol.js'

/** What {@link rawRequest} got back. */
export interface RawResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
}

/**
 * One HTTP request with the path sent byte for byte as given: no URL normalisation of
 * `..`, no percent-encoding of unicode, as `fetch` would do. A fresh connection each time,
 * so a request the server refuses at the parser cannot spoil the next one.
 */
export function rawRequest(
  baseUrl: string,
  method: string,
  path: string,
  body?: string | Buffer,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  const url = new URL(baseUrl)
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: url.hostname, port: url.port, method, path, headers, agent: false, insecureHTTPParser: false },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }))
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

/**
 * Asserts that an answer is an error in the one shape, with `code` and `status`, and that
 * the message names `field` (a string or a pattern). Returns the parsed error.
 */
export function assertError(
  t: Test,
  res: { status: number; text: string },
  status: number,
  code: string,
  field?: string | RegExp,
  what = '',
): ErrorBody['error'] | undefined {
  const label = what === '' ? '' : `${what}: `
  t.equal(res.status, status, `${label}status ${status}`)
  let parsed: unknown
  try {
    parsed = JSON.parse(res.text)
  } catch {
    t.fail(`${label}the body is not JSON: ${res.text.slice(0, 200)}`)
    return undefined
  }
  const shape = ErrorBody.strict().safeParse(parsed)
  if (!shape.success) {
    t.fail(`${label}not the error shape: ${res.text.slice(0, 200)}`)
    return undefined
  }
  t.ok(Object.keys(parsed as object).length === 1, `${label}nothing but "error" at the top`)
  const error = shape.data.error
  t.equal(error.code, code, `${label}code ${code}`)
  if (field !== undefined) {
    const pattern = typeof field === 'string' ? new RegExp(`(^|[^A-Za-z0-9_])${escape(field)}([^A-Za-z0-9_]|$)`) : field
    t.match(error.message, pattern, `${label}the message names ${String(field)}`)
  }
  return error
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** Reads a fetch Response into the form {@link assertError} takes. */
export async function read(res: Response): Promise<{ status: number; text: string; headers: Headers }> {
  return { status: res.status, text: await res.text(), headers: res.headers }
}
