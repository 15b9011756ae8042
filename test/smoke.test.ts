import t from 'tap'
import { startTestServer, instanceBody } from './helpers/server.js'

t.test('register then read back', async (t) => {
  const s = await startTestServer(t)
  const put = await s.request('PUT', '/v1/services/orders/instances/o-1', instanceBody())
  t.equal(put.status, 201)
  const get = await s.request('GET', '/v1/services/orders/instances')
  const body = (await get.json()) as { instances: unknown[] }
  t.equal(body.instances.length, 1)
})
