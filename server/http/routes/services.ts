import type { FastifyPluginAsync } from 'fastify'
import { BatchHeartbeatBody } from '../../../client-sdk/protocol.js'
import type { BatchHeartbeatResponse } from '../../../client-sdk/protocol.js'
import { GLOBAL } from '../blocking.js'
import type { AppContext } from '../context.js'
import { parseWith } from '../errors.js'
import { noQuery, servicesQuery } from '../query.js'
import { blockUntilPast, revisionHeaders } from '../revision.js'

/** The service list and the batch heartbeat: routes that span services. */
export const serviceRoutes: FastifyPluginAsync<AppContext> = async (app, { registry, waiters }) => {
  app.get<{ Querystring: Record<string, unknown> }>('/v1/services', async (request, reply) => {
    const blocking = servicesQuery(request.query)
    // Cluster mode: first catch up with what any node acknowledged (read-your-writes).
    if (registry.sync !== undefined) await registry.sync()
    await blockUntilPast(waiters, GLOBAL, blocking, () => registry.revision, reply)
    const revision = registry.revision
    if (revisionHeaders(request, reply, revision)) return reply.send()
    return { revision, services: registry.summaries() }
  })

  app.post<{ Querystring: Record<string, unknown> }>('/v1/heartbeats', async (request): Promise<BatchHeartbeatResponse> => {
    noQuery(request.query)
    const body = parseWith(BatchHeartbeatBody, request.body, 'body')
    // In cluster mode a heartbeat is an etcd lease keepalive: they run side by side.
    const found = await Promise.all(body.instances.map(({ service, id }) => registry.heartbeat(service, id)))
    const results: BatchHeartbeatResponse['results'] = body.instances.map(({ service, id }, i) => {
      const r = found[i]
      if (r === undefined) {
        return {
          service,
          id,
          ok: false as const,
          error: { code: 'INSTANCE_NOT_FOUND' as const, message: `instance ${service}/${id} is not registered` },
        }
      }
      return { service, id, ok: true as const, expiresAt: new Date(r.expiresAt).toISOString(), status: r.status, health: r.health }
    })
    return { results }
  })
}
