/**
 * The ceiling of the HTTP stack: a bare Fastify server on the same machine, with the same
 * Fastify as rollcall and no work of its own. Prints its URL as one JSON line.
 *   PUT  /v1/services/:service/instances/:id/heartbeat -> 204 (the heartbeat's shape, nothing done)
 *   POST /v1/services/:service/instances              -> 201 with the body echoed (a JSON POST route)
 */
import Fastify from 'fastify'

const app = Fastify()
app.put('/v1/services/:service/instances/:id/heartbeat', async (_req, reply) => reply.code(204).send())
app.post('/v1/services/:service/instances', async (req, reply) => reply.code(201).send(req.body))
await app.listen({ host: '127.0.0.1', port: 0 })
const address = app.server.address()
const port = typeof address === 'object' && address !== null ? address.port : 0
console.log(JSON.stringify({ address: `http://127.0.0.1:${port}` }))
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)))
