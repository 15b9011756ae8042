import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Blocking } from './query.js'
import type { RevisionWaiters } from './blocking.js'

/**
 * A blocking query: parks until `current()` passes `blocking.index`, its wait runs out, or
 * the client goes away. Without an index it returns at once.
 */
export async function blockUntilPast(
  waiters: RevisionWaiters,
  key: string,
  blocking: Blocking,
  current: () => number,
  reply: FastifyReply,
): Promise<void> {
  const index = blocking.index
  if (index === undefined || current() > index) return
  const deadline = Date.now() + blocking.waitMs
  const gone = new AbortController()
  const onClose = () => gone.abort()
  reply.raw.once('close', onClose)
  try {
    while (current() <= index && !gone.signal.aborted) {
      const left = deadline - Date.now()
      if (left <= 0) break
      await waiters.wait(key, left, gone.signal)
      if (waiters.closed) break
    }
  } finally {
    reply.raw.off('close', onClose)
  }
}

/**
 * Sets `ETag` and `X-Rollcall-Revision` to `revision`; answers 304 (and returns true) when
 * the request's If-None-Match already names it.
 */
export function revisionHeaders(request: FastifyRequest, reply: FastifyReply, revision: number): boolean {
  const etag = `"${revision}"`
  void reply.header('etag', etag).header('x-rollcall-revision', String(revision))
  const inm = request.headers['if-none-match']
  if (inm === undefined) return false
  for (const tag of inm.split(',')) {
    const t = tag.trim()
    if (t === '*' || t === etag || t === `W/${etag}`) {
      void reply.code(304)
      return true
    }
  }
  return false
}
