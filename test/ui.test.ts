/**
 * The web dashboard in headless Chromium (Debian's /usr/bin/chromium driven by
 * playwright-core) against a real server on a manual clock: instances appear live when
 * they register, turn critical when their lease runs out, the page shows a dropped
 * connection and resumes with `since`, the filter works, drain and deregister ask first
 * and send the token. It ends with a screenshot in docs/dashboard.png.
 */
import { existsSync } from 'node:fs'
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join, resolve } from 'node:path'
import { chromium } from 'playwright-core'
import type { BrowserContext, Page } from 'playwright-core'
import t from 'tap'
import { ManualClock } from '../server/registry/clock.js'
import { instanceBody, startTestServer, tempDir } from './helpers/server.js'
import type { TestServer } from './helpers/server.js'

const CHROMIUM = '/usr/bin/chromium'
const SCREENSHOT = resolve(import.meta.dirname, '../docs/dashboard.png')
/** A safety net for waits on a busy machine, not a timing assertion. */
const WAIT = { timeout: 60_000 }

// A browser on a busy 2-core machine: generous, as a safety net only.
t.setTimeout(600_000)

async function launch(t: { teardown(fn: () => unknown): void }): Promise<BrowserContext> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`)
  const context = await chromium.launchPersistentContext(tempDir(t, 'rollcall-chromium-'), {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1440, height: 900 },
    colorScheme: 'light',
  })
  t.teardown(() => context.close())
  return context
}

/** Loopback addresses of the checked instances (all of 127/8 is local on Linux). */
const HEALTHY_HOSTS = ['127.0.4.21', '127.0.4.22', '127.0.4.23', '127.0.5.10']
/** A checked instance with nothing listening: its check fails with ECONNREFUSED. */
const DEAD_HOST = '127.0.5.11'

/**
 * HTTP check targets answering 200, one per healthy host, all on one port so the
 * instances look like a real fleet. Returns that port.
 */
async function checkTargets(t: { teardown(fn: () => unknown): void }): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const servers: Server[] = []
    const listen = (server: Server, host: string, port: number) =>
      new Promise<void>((res, rej) => {
        server.once('error', rej)
        server.listen(port, host, () => res())
      })
    try {
      let port = 0
      for (const host of HEALTHY_HOSTS) {
        const server = createServer((_req, res) => res.end('ok'))
        servers.push(server)
        await listen(server, host, port)
        port = (server.address() as AddressInfo).port
      }
      t.teardown(() =>
        Promise.all(
          servers.map((server) => {
            server.closeAllConnections()
            return new Promise<void>((r) => server.close(() => r()))
          }),
        ),
      )
      return port
    } catch (err) {
      // The port picked for the first host was taken on another: try another port.
      for (const server of servers) server.close()
      if (attempt >= 5) throw err
    }
  }
}

async function put(s: TestServer, service: string, id: string, body: Record<string, unknown>): Promise<void> {
  const res = await s.request('PUT', `/v1/services/${service}/instances/${id}`, instanceBody(body))
  if (res.status !== 201 && res.status !== 200) throw new Error(`PUT ${service}/${id}: ${res.status} ${await res.text()}`)
}

/** A fleet that looks like a real one, with checks that pass and one that fails. */
async function seed(s: TestServer, port: number): Promise<void> {
  const http = { type: 'http', path: '/health', intervalSeconds: 60, timeoutSeconds: 2 }
  const [h1, h2, h3, h4] = HEALTHY_HOSTS as [string, string, string, string]
  await put(s, 'orders', 'orders-7f9c2', { host: h1, port, zone: 'eu-west-1a', version: '2.14.0', tags: ['api', 'canary'], weight: 50, check: http })
  await put(s, 'orders', 'orders-a41d8', { host: h2, port, zone: 'eu-west-1b', version: '2.13.2', tags: ['api'], check: http })
  await put(s, 'orders', 'orders-c03e5', { host: h3, port, zone: 'eu-west-1c', version: '2.13.2', tags: ['api'], check: http })
  await put(s, 'billing', 'billing-1', { host: h4, port, zone: 'eu-west-1a', version: '1.8.4', tags: ['payments'], metadata: { team: 'payments' }, check: http })
  await put(s, 'billing', 'billing-2', { host: DEAD_HOST, port, zone: 'eu-west-1b', version: '1.8.4', tags: ['payments'], check: { type: 'tcp', intervalSeconds: 60, timeoutSeconds: 2 } })
  await put(s, 'search', 'search-01', { host: '10.0.6.31', port: 9200, scheme: 'https', zone: 'eu-west-1a', version: '8.12.1', tags: ['hot'], weight: 200 })
  await put(s, 'search', 'search-02', { host: '10.0.6.32', port: 9200, scheme: 'https', zone: 'eu-west-1b', version: '8.12.1', tags: ['hot'], weight: 200 })
  await put(s, 'search', 'search-03', { host: '10.0.6.33', port: 9200, scheme: 'https', zone: 'eu-west-1c', version: '8.12.1', tags: ['warm'], weight: 0 })
  await put(s, 'search', 'search-04', { host: '10.0.6.34', port: 9200, scheme: 'https', zone: 'eu-west-1a', version: '8.13.0', tags: ['warm'], status: 'starting' })
  await put(s, 'gateway', 'gw-edge-1', { host: 'gw-1.internal', port: 8443, scheme: 'https', zone: 'eu-west-1a', version: '0.9.7', tags: ['edge'] })
}

/** Waits for the row of `key` to show `text` in the cell of class `cell`. */
async function cell(page: Page, key: string, cellClass: string, text: string): Promise<void> {
  await page.locator(`tr[data-key="${key}"] td.${cellClass}`, { hasText: text }).waitFor(WAIT)
}

t.test('the dashboard follows the registry live, and drains and deregisters with a confirmation', async (t) => {
  const clock = new ManualClock(Date.now())
  const deps = { clock, sweepIntervalMs: 0 }
  // Servers live as long as this test, not the subtest that (re)starts one.
  const whole = t
  let s = await startTestServer(t, { checks: true }, deps)
  await seed(s, await checkTargets(t))

  const context = await launch(t)
  const page = context.pages()[0] ?? (await context.newPage())
  const problems: string[] = []
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`))
  page.on('console', (m) => {
    // The browser logs each refused reconnect while the server is down: expected there.
    if (m.type() === 'error' && !/^WebSocket connection to .* failed/.test(m.text())) problems.push(`console: ${m.text()}`)
  })
  const external: string[] = []
  page.on('request', (r) => {
    if (!r.url().startsWith(s.url.replace(/:\d+$/, ''))) external.push(r.url())
  })

  await page.goto(`${s.url}/ui`)
  await page.waitForSelector('body[data-connection="live"]', WAIT)
  await page.locator('tr[data-key="gateway/gw-edge-1"]').waitFor(WAIT)
  t.equal(await page.locator('tbody tr[data-key]').count(), 10, 'every seeded instance has a row')
  t.equal(await page.locator('tbody.service').count(), 4, 'one group per service')
  // The active checks answer on their own: one passes, one fails.
  await cell(page, 'orders/orders-7f9c2', 'check', '200')
  await cell(page, 'billing/billing-2', 'check', 'ECONNREFUSED')
  await cell(page, 'billing/billing-2', 'health', 'critical')

  await t.test('a registration appears at once, with its fields', async (t) => {
    await put(s, 'inventory', 'inv-3b7e1', {
      host: '10.0.7.5', port: 8080, zone: 'eu-west-1b', version: '3.2.0', tags: ['batch'], weight: 80, ttlSeconds: 10, deregisterAfterSeconds: 300,
    })
    const row = page.locator('tr[data-key="inventory/inv-3b7e1"]')
    await row.waitFor(WAIT)
    t.equal(await row.locator('td.health').textContent(), 'passing')
    t.equal(await row.locator('td.status').textContent(), 'up')
    t.equal(await row.locator('td.zone').textContent(), 'eu-west-1b')
    t.equal(await row.locator('td.version').textContent(), '3.2.0')
    t.equal(await row.locator('td.weight').textContent(), '80')
    t.equal(await row.locator('td.tags').textContent(), 'batch')
    t.equal(await row.locator('td.beat').textContent(), 'within 10s')
    t.equal(await page.locator('#stat-instances').textContent(), '11')
  })

  await t.test('the instance turns critical when its lease runs out', async (t) => {
    clock.advance(11_000)
    s.registry.sweep()
    await cell(page, 'inventory/inv-3b7e1', 'health', 'critical')
    t.match(await page.locator('tr[data-key="inventory/inv-3b7e1"] td.beat').textContent(), /^\d+s ago · removal in \d+m \d+s$/)
    t.equal(await page.locator('#stat-critical').textContent(), '2')
    t.equal(await page.locator('tbody[data-service="inventory"] .counts .bad', { hasText: 'critical' }).textContent(), '1 critical')
  })

  await t.test('the filter narrows the rows; views show the problems', async (t) => {
    await page.fill('#filter', 'zone:eu-west-1b')
    await page.waitForFunction(() => document.querySelectorAll('tbody tr[data-key]').length === 4, undefined, WAIT)
    t.match(await page.locator('#shown').textContent(), '4 of 11 shown')
    t.match(page.url(), /\/ui#q=zone%3Aeu-west-1b$/, 'the filter is kept in the URL, to share')
    await page.fill('#filter', 'payments')
    await page.waitForFunction(() => document.querySelectorAll('tbody tr[data-key]').length === 2, undefined, WAIT)
    await page.fill('#filter', 'nothing-like-this')
    await page.locator('#empty', { hasText: 'Nothing matches the filter' }).waitFor(WAIT)
    await page.fill('#filter', '')
    await page.click('.views button[data-view="critical"]')
    const critical = await page.locator('tbody tr[data-key]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-key')))
    t.same(critical.sort(), ['billing/billing-2', 'inventory/inv-3b7e1'])
    await page.click('.views button[data-view="all"]')
    await page.waitForFunction(() => document.querySelectorAll('tbody tr[data-key]').length === 11, undefined, WAIT)
  })

  await t.test('drain asks first, sends the token, and the row follows', async (t) => {
    await page.fill('#token', 'ops-admin-token')
    await page.click('#token-save')
    await page.waitForSelector('body[data-connection="live"]', WAIT)
    const key = 'orders/orders-c03e5'
    const drain = page.locator(`tr[data-key="${key}"] button[data-action="drain"]`)

    // Cancel: nothing is sent.
    await drain.click()
    await page.locator('#confirm[open]').waitFor(WAIT)
    t.equal(await page.locator('#confirm-target').textContent(), key)
    await page.click('#confirm-cancel')
    await page.locator('#confirm').waitFor({ state: 'hidden', ...WAIT })
    t.equal(s.registry.get('orders', 'orders-c03e5')?.status, 'up', 'cancelled: still up')

    // Confirm: a PATCH with the token.
    const request = page.waitForRequest((r) => r.method() === 'PATCH', WAIT)
    await drain.click()
    await page.locator('#confirm[open]').waitFor(WAIT)
    t.equal(await page.locator('#confirm-ok').textContent(), 'Drain')
    await page.click('#confirm-ok')
    const sent = await request
    t.equal(sent.url(), `${s.url}/v1/services/orders/instances/orders-c03e5`)
    t.equal(sent.headers().authorization, 'Bearer ops-admin-token', 'the token as a bearer')
    t.same(sent.postDataJSON(), { status: 'draining' })
    await cell(page, key, 'status', 'draining')
    t.equal(s.registry.get('orders', 'orders-c03e5')?.status, 'draining')
    await page.locator(`tr[data-key="${key}"] button[data-action="resume"]`).waitFor(WAIT)
  })

  await t.test('deregister asks first and the row goes', async (t) => {
    await put(s, 'billing', 'billing-old', { host: '10.0.5.9', port: 8080, version: '1.7.0' })
    const row = page.locator('tr[data-key="billing/billing-old"]')
    await row.waitFor(WAIT)
    await row.locator('button[data-action="deregister"]').click()
    await page.locator('#confirm[open]').waitFor(WAIT)
    t.equal(await page.locator('#confirm-ok').textContent(), 'Deregister')
    await page.click('#confirm-ok')
    await row.waitFor({ state: 'detached', ...WAIT })
    t.equal(s.registry.get('billing', 'billing-old'), undefined)
    await page.locator('.toast', { hasText: 'billing/billing-old was deregistered' }).waitFor(WAIT)
  })

  await t.test('a dropped connection shows, and the page resumes with since', async (t) => {
    const revision = s.registry.revision
    t.equal(await page.getAttribute('body', 'data-snapshots'), '1')
    const port = Number(new URL(s.url).port)
    const db = s.dbPath
    await s.close()
    await page.waitForSelector('body[data-connection="reconnecting"]', WAIT)
    t.ok(await page.locator('#banner').isVisible(), 'a banner says the live view is lost')
    t.match(await page.locator('#banner').textContent(), /last known state \(revision \d+\)/)
    t.ok(await page.locator('main.stale').count(), 'the table is dimmed')

    // The same server comes back on the same port and database.
    s = await startTestServer(whole, { checks: true, port, db }, deps)
    await page.waitForSelector('body[data-connection="live"]', WAIT)
    t.ok(await page.locator('#banner').isHidden(), 'the banner goes once live again')
    await put(s, 'inventory', 'inv-9d2a4', { host: '10.0.7.6', port: 8080, zone: 'eu-west-1c', version: '3.2.0', tags: ['batch'], weight: 80 })
    await page.locator('tr[data-key="inventory/inv-9d2a4"]').waitFor(WAIT)
    t.equal(await page.getAttribute('body', 'data-snapshots'), '1', 'resumed with since: no second snapshot')
    t.ok(Number(await page.getAttribute('body', 'data-revision')) > revision)
  })

  // The screenshot: the restart revived every lease; let one lapse again for the picture.
  clock.advance(31_000)
  for (const [service, id] of [['orders', 'orders-a41d8'], ['orders', 'orders-7f9c2'], ['billing', 'billing-1'], ['search', 'search-01'], ['search', 'search-02'], ['search', 'search-03'], ['search', 'search-04'], ['gateway', 'gw-edge-1'], ['inventory', 'inv-9d2a4'], ['orders', 'orders-c03e5'], ['billing', 'billing-2']] as const) {
    await s.request('PUT', `/v1/services/${service}/instances/${id}/heartbeat`)
  }
  s.registry.sweep()
  await cell(page, 'inventory/inv-3b7e1', 'health', 'critical')
  await cell(page, 'billing/billing-2', 'health', 'critical')
  await cell(page, 'orders/orders-7f9c2', 'check', '200')
  // Hovered, as an operator would, to show the actions on a row.
  await page.locator('tr[data-key="orders/orders-c03e5"] td.zone').hover()
  // Toasts go by themselves in a few seconds; take them away rather than wait.
  await page.locator('.toast').evaluateAll((toasts) => toasts.forEach((el) => el.remove()))
  // Let the flash of the last changes fade.
  await page.waitForFunction(() => document.getAnimations().filter((a) => a.playState === 'running' && (a as unknown as { animationName?: string }).animationName === 'flash').length === 0, undefined, WAIT)
  await page.screenshot({ path: SCREENSHOT, fullPage: true })
  t.ok(existsSync(SCREENSHOT), `screenshot in ${join('docs', 'dashboard.png')}`)

  t.same(external, [], 'the page loads nothing from anywhere else')
  t.same(problems, [], 'no script errors')
})
