import { createHash } from 'node:crypto'
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { extname, join } from 'node:path'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { packageRoot } from '../../paths.js'
import { errorBody } from '../errors.js'

/** Content types of what ui/ holds. Files of other kinds are not served. */
const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
}

/**
 * The page may load only its own files and talk only to this server (REST and the watch
 * socket): no CDN, no inline script, nothing framed.
 */
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ')

interface Asset {
  body: Buffer
  type: string
  etag: string
}

/** Options of {@link uiRoutes}. */
export interface UiOptions {
  /** The folder of the page's files. Default: the package's ui/. */
  dir?: string
}

/**
 * The web dashboard: GET /ui is ui/index.html, GET /ui/{file} the other files of ui/ (one
 * level, no folders). The files are read once at start into memory (a few tens of KiB),
 * so a request can name only a file that was there: nothing from the path reaches the
 * file system, and `..` or an encoded slash simply finds no file.
 */
export const uiRoutes: FastifyPluginAsync<UiOptions> = async (app, options) => {
  const dir = options.dir ?? join(packageRoot(), 'ui')
  const assets = new Map<string, Asset>()
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)]
    const path = join(dir, name)
    if (type === undefined || !statSync(path).isFile()) continue
    const body = readFileSync(path)
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`
    assets.set(name, { body, type, etag })
  }

  const send = (request: FastifyRequest, reply: FastifyReply, name: string) => {
    const asset = assets.get(name)
    if (asset === undefined) return reply.code(404).send(errorBody('NOT_FOUND', `no file /ui/${name}`))
    // Revalidated each time (cheap: a 304), so a new release shows at once.
    void reply
      .header('cache-control', 'no-cache')
      .header('etag', asset.etag)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
    if (asset.type.startsWith('text/html')) void reply.header('content-security-policy', CSP)
    if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send()
    return reply.type(asset.type).send(asset.body)
  }

  app.get('/ui', async (request, reply) => send(request, reply, 'index.html'))
  app.get<{ Params: { file?: string } }>('/ui/:file', async (request, reply) =>
    send(request, reply, request.params.file === undefined || request.params.file === '' ? 'index.html' : request.params.file),
  )
}
