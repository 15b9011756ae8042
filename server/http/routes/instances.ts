import type { FastifyPluginAsync } from 'fastify'
import { PatchBody, RegisterBody, isRoutable } from '../../../client-sdk/protocol.js'
import type { Instance } from '../../../client-sdk/protocol.js'
import { instanceNotFound } from '../../registry/errors.js'
import type { InstanceRecord } from '../../registry/record.js'
import { toWire } from '../../registry/record.js'
import type { AppContext } from '../context.js'
import { parseWith } from '../errors.js'
import type { InstanceFilter } from '../query.js'
import { instancesQuery, noQuery, pathName } from '../query.js'
import { blockUntilPast, revisionHeaders } from '../revision.js'

type Query = Record<string, unknown>
type ServiceRoute = { Params: { service?: string }; Querystring: Query }
type InstanceRoute = { Params: { service?: string; id?: string }; Querystring: Query }

/** Whether `r` passes every part of the filter. */
export function matches(r: InstanceRecord, f: InstanceFilter): boolean {
  if (f.healthy && !isRoutable(r)) return false
  if (f.zone !== undefined && r.zone !== f.zone) return false
  for (const t of f.tags) if (!r.tags.includes(t)) return false
  for (const [k, v] of f.meta) if (!Object.hasOwn(r.metadata, k) || r.metadata[k] !== v) return false
  return true
}

/** Registration, updates, removal, heartbeats and queries of one service's instances. */
export const instanceRoutes: FastifyPluginAsync<AppContext> = async (app, { registry, waiters }) => {
  const base = '/v1/services/:service/instances'

  app.put<InstanceRoute>(`${base}/:id`, async (request, reply) => {
    noQuery(request.query)
    const service = pathName(request.params.service, 'service')
    const id = pathName(request.params.id, 'id')
    const body = parseWith(RegisterBody, request.body, 'body')
    const { record, created, committed } = await registry.register(service, id, body)
    await committed
    return reply.code(created ? 201 : 200).send(toWire(record))
  })

  app.post<ServiceRoute>(base, async (request, reply) => {
    noQuery(request.query)
    const service = pathName(request.params.service, 'service')
    const body = parseWith(RegisterBody, request.body, 'body')
    const { record, committed } = await registry.register(service, undefined, body)
    await committed
    return reply.code(201).header('location', `/v1/services/${service}/instances/${record.id}`).send(toWire(record))
  })

  app.put<InstanceRoute>(`${base}/:id/heartbeat`, async (request) => {
    noQuery(request.query)
    const service = pathName(request.params.service, 'service')
    const id = pathName(request.params.id, 'id')
    const r = await registry.heartbeat(service, id)
    if (r === undefined) throw instanceNotFound(service, id)
    return { expiresAt: new Date(r.expiresAt).toISOString(), status: r.status, health: r.health }
  })

  app.patch<InstanceRoute>(`${base}/:id`, async (request) => {
    noQuery(request.query)
    const service = pathName(request.params.service, 'service')
    const id = pathName(request.params.id, 'id')
    const patch = parseWith(PatchBody, request.body, 'body')
    const { record, committed } = await registry.patch(service, id, patch)
    await committed
    return toWire(record)
  })

  app.delete<InstanceRoute>(`${base}/:id`, async (request, reply) => {
    noQuery(request.query)
    const service = pathName(request.params.service, 'service')
    const id = pathName(request.params.id, 'id')
    await registry.deregister(service, id)
    return reply.code(204).send()
  })

  app.get<InstanceRoute>(`${base}/:id`, async (request) => {
    noQuery(request.query)
    const service = pathName(request.params.service, 'service')
    const id = pathName(request.params.id, 'id')
    // Cluster mode: first catch up with what any node acknowledged (read-your-writes).
    if (registry.sync !== undefined) await registry.sync()
    const r = registry.get(service, id)
    if (r === undefined) throw instanceNotFound(service, id)
    return toWire(r)
  })

  app.get<ServiceRoute>(base, async (request, reply) => {
    const service = pathName(request.params.service, 'service')
    const { filter, blocking } = instancesQuery(request.query)
    if (registry.sync !== undefined) await registry.sync()
    await blockUntilPast(waiters, service, blocking, () => registry.serviceRevision(service), reply)
    const revision = registry.serviceRevision(service)
    if (revisionHeaders(request, reply, revision)) return reply.send()
    const instances: Instance[] = []
    const entry = registry.service(service)
    if (entry !== undefined) for (const r of entry.instances.values()) if (matches(r, filter)) instances.push(toWire(r))
    instances.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    return { service, revision, instances }
  })
}
