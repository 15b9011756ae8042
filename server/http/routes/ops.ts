import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyPluginAsync } from 'fastify'
import { packageRoot } from '../../paths.js'
import type { AppContext } from '../context.js'
import { errorBody } from '../errors.js'
import type { Metrics } from '../metrics.js'

/** Liveness, readiness, metrics and the API spec. */
export const opsRoutes: FastifyPluginAsync<AppContext & { metrics: Metrics }> = async (app, { registry, metrics }) => {
  const spec = readFileSync(join(packageRoot(), 'openapi.yaml'), 'utf8')
  let closing = false
  app.addHook('preClose', async () => {
    closing = true
  })

  app.get('/healthz', async () => ({ status: 'ok' }))

  app.get('/readyz', async (_request, reply) => {
    if (registry.failure !== undefined) {
      return reply.code(503).send(errorBody('UNAVAILABLE', `store failed: ${registry.failure.message}`))
    }
    if (closing) return reply.code(503).send(errorBody('UNAVAILABLE', 'shutting down'))
    return {
      status: 'ready',
      revision: registry.revision,
      instances: registry.instanceCount,
      selfPreservation: registry.selfPreservation,
    }
  })

  app.get('/metrics', async (_request, reply) => {
    const text = await metrics.registry.metrics()
    return reply.type(metrics.registry.contentType).send(text)
  })

  app.get('/openapi.yaml', async (_request, reply) => reply.type('application/yaml').send(spec))
}
