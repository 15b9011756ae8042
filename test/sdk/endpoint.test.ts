import t from 'tap'
import { Endpoint, originOf } from '../../client-sdk/endpoint.js'

t.test('defaults of a hand-made endpoint', async (t) => {
  const e = new Endpoint({ id: 'a', host: 'svc.local', port: 80 })
  t.match(e, { id: 'a', service: '', weight: 100, scheme: 'http', status: 'up', health: 'passing', zone: undefined, inFlight: 0 })
  t.equal(e.origin, 'http://svc.local:80')
  t.equal(e.instance, undefined)
  t.ok(e.routable)
})

t.test('update changes the fields in place and refuses another id', async (t) => {
  const e = new Endpoint({ id: 'a', host: 'h1', port: 1, zone: 'z1' })
  e.inFlight = 2
  e.update({ id: 'a', host: 'h2', port: 2, health: 'critical', scheme: 'https' })
  t.equal(e.origin, 'https://h2:2')
  t.equal(e.zone, undefined, 'a zone that is gone is gone')
  t.equal(e.inFlight, 2)
  t.notOk(e.routable)
  t.throws(() => e.update({ id: 'b', host: 'h', port: 1 }), /endpoint a cannot take the record of b/)
})

t.test('origins', async (t) => {
  t.equal(originOf('http', '10.0.0.1', 80), 'http://10.0.0.1:80')
  t.equal(originOf('https', 'fe80::1', 443), 'https://[fe80::1]:443')
  t.equal(originOf('http', '[::1]', 8080), 'http://[::1]:8080')
})
