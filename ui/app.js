// rollcall dashboard: every service and instance, live over the watch socket.
//
// State comes only from GET /v1/watch: subscribe to "*", take the snapshot, then apply
// each change. Nothing is polled. When the socket drops, the page says so, keeps the last
// known state (dimmed), and reconnects with `since` = the last revision it applied, so the
// server replays what was missed (or sends a fresh snapshot when that is too old).
//
// Operators with a token can drain, resume or deregister an instance. The token lives in
// sessionStorage (gone with the tab), goes out as `Authorization: Bearer` on REST calls,
// and as the first frame on the socket, since a browser cannot set headers on a WebSocket.

const TOKEN_KEY = 'rollcall.token'
const COLLAPSED_KEY = 'rollcall.collapsed'

/** service -> (id -> instance) */
const services = new Map()
let revision = -1
let snapshots = 0
/** Revision of the last render: rows changed after it flash once. */
let renderedRevision = Infinity
let view = 'all'
let query = ''
let token = sessionStorage.getItem(TOKEN_KEY) ?? ''
const collapsed = new Set(JSON.parse(sessionStorage.getItem(COLLAPSED_KEY) ?? '[]'))

const $ = (id) => document.getElementById(id)

// ---------------------------------------------------------------------------------------
// The live connection

let socket = null
let attempt = 0
let retryTimer = 0
let lostAt = 0

function connect() {
  clearTimeout(retryTimer)
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/watch`)
  socket = ws
  ws.addEventListener('open', () => {
    if (token !== '') ws.send(JSON.stringify({ type: 'auth', token }))
    const since = revision >= 0 ? { since: revision } : {}
    ws.send(JSON.stringify({ type: 'subscribe', services: ['*'], ...since }))
    // Live from here: a resume with nothing missed brings no message at all.
    lostAt = 0
    setConnection('live')
  })
  ws.addEventListener('message', (event) => {
    let m
    try {
      m = JSON.parse(event.data)
    } catch {
      return
    }
    receive(m)
  })
  ws.addEventListener('close', (event) => {
    if (socket !== ws) return
    socket = null
    if (lostAt === 0) lostAt = Date.now()
    if (event.code !== 1000) document.body.dataset.drops = String(Number(document.body.dataset.drops ?? 0) + 1)
    // Full jitter, capped: a registry coming back is not hit by every open tab at once.
    const delay = Math.round(Math.random() * Math.min(10_000, 250 * 2 ** attempt++))
    const why =
      event.code === 4001
        ? 'the server refused the token (revoked or not allowed)'
        : event.code === 4008
          ? 'the page fell behind'
          : event.code === 1001
            ? 'the server is restarting'
            : 'the connection closed'
    setConnection('reconnecting', why, delay)
    retryTimer = setTimeout(connect, delay)
  })
}

/** The socket authenticates in its first frame: a new token needs a new socket (resuming with since). */
function reconnectNow() {
  const old = socket
  socket = null
  old?.close(1000, 'token changed')
  connect()
}

function receive(m) {
  switch (m.type) {
    case 'snapshot': {
      services.clear()
      for (const [name, list] of Object.entries(m.services)) {
        const byId = new Map()
        for (const instance of list) byId.set(instance.id, instance)
        services.set(name, byId)
      }
      revision = m.revision
      snapshots++
      renderedRevision = Infinity
      attempt = 0
      break
    }
    case 'change': {
      if (m.revision <= revision) return
      let byId = services.get(m.service)
      if (byId === undefined) {
        byId = new Map()
        services.set(m.service, byId)
      }
      if (m.op === 'delete') {
        byId.delete(m.instance.id)
        if (byId.size === 0) services.delete(m.service)
      } else byId.set(m.instance.id, m.instance)
      revision = m.revision
      attempt = 0
      break
    }
    case 'error':
      if (m.error?.code === 'UNAUTHENTICATED' || m.error?.code === 'FORBIDDEN') {
        toast(`The live view needs a token with the read scope: ${m.error.message}`, 'error')
      }
      return
    default:
      return
  }
  scheduleRender()
}

function setConnection(state, why = '', delay = 0) {
  document.body.dataset.connection = state
  document.body.dataset.revision = String(revision)
  document.body.dataset.snapshots = String(snapshots)
  const text = $('conn-text')
  if (state === 'live') text.textContent = 'Live'
  else if (state === 'connecting') text.textContent = 'Connecting…'
  else text.textContent = 'Reconnecting…'
  const banner = $('banner')
  banner.hidden = state !== 'reconnecting' || revision < 0
  if (!banner.hidden) {
    const at = lostAt === 0 ? '' : ` at ${new Date(lostAt).toLocaleTimeString()}`
    $('banner-text').textContent =
      `${why === '' ? 'The connection closed' : why[0].toUpperCase() + why.slice(1)}${at}. ` +
      `Showing the last known state (revision ${revision}); retrying${delay > 0 ? ` in ${(delay / 1000).toFixed(1)}s` : ''}…`
  }
  $('main').classList.toggle('stale', state === 'reconnecting' && revision >= 0)
}

// ---------------------------------------------------------------------------------------
// Filtering

const FIELDS = {
  service: (i) => [i.service],
  id: (i) => [i.id],
  host: (i) => [i.host, `${i.host}:${i.port}`],
  zone: (i) => [i.zone ?? ''],
  version: (i) => [i.version ?? ''],
  tag: (i) => i.tags,
  status: (i) => [i.status],
  health: (i) => [i.health],
  meta: (i) => Object.entries(i.metadata).map(([k, v]) => `${k}=${v}`),
}

/** Words all must match: `key:value` against one field, a bare word against any. */
function matcher(text) {
  const terms = text
    .toLowerCase()
    .split(/\s+/)
    .filter((t) => t !== '')
    .map((t) => {
      const at = t.indexOf(':')
      const key = at > 0 ? t.slice(0, at) : ''
      return key in FIELDS ? { field: FIELDS[key], value: t.slice(at + 1) } : { field: undefined, value: t }
    })
  if (terms.length === 0) return () => true
  return (i) =>
    terms.every(({ field, value }) => {
      const values = field === undefined ? Object.values(FIELDS).flatMap((f) => f(i)) : field(i)
      return values.some((v) => v.toLowerCase().includes(value))
    })
}

const routable = (i) => i.status === 'up' && i.health === 'passing'
const VIEWS = {
  all: () => true,
  unroutable: (i) => !routable(i),
  critical: (i) => i.health === 'critical',
}

// ---------------------------------------------------------------------------------------
// Rendering: one pass per animation frame, whatever arrived in between.

let renderPending = false
function scheduleRender() {
  if (renderPending) return
  renderPending = true
  requestAnimationFrame(() => {
    renderPending = false
    render()
  })
}

const esc = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c])

function render() {
  const match = matcher(query)
  const inView = VIEWS[view]
  let total = 0
  let up = 0
  let critical = 0
  let unroutable = 0
  let shown = 0
  const sections = []
  for (const name of [...services.keys()].sort()) {
    const list = [...services.get(name).values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    const counts = { passing: 0, critical: 0, unknown: 0, routable: 0 }
    for (const i of list) {
      counts[i.health]++
      if (routable(i)) counts.routable++
    }
    total += list.length
    up += counts.routable
    critical += counts.critical
    unroutable += list.length - counts.routable
    const rows = list.filter((i) => inView(i) && match(i))
    if (rows.length === 0) continue
    shown += rows.length
    sections.push(section(name, list, rows, counts))
  }

  $('services').innerHTML = sections.length === 0 ? '' : board(sections)
  renderedRevision = revision
  $('stat-services').textContent = String(services.size)
  $('stat-instances').textContent = String(total)
  $('stat-routable').textContent = String(up)
  $('stat-critical').textContent = String(critical)
  $('stat-critical').parentElement.classList.toggle('alert', critical > 0)
  $('stat-revision').textContent = revision < 0 ? '–' : String(revision)
  $('count-all').textContent = String(total)
  $('count-unroutable').textContent = String(unroutable)
  $('count-critical').textContent = String(critical)
  $('shown').textContent = shown === total ? '' : `${shown} of ${total} shown`
  document.body.dataset.revision = String(revision)
  document.body.dataset.snapshots = String(snapshots)

  const empty = $('empty')
  empty.hidden = shown > 0 || revision < 0
  empty.textContent =
    total === 0
      ? 'No instances are registered. They appear here the moment one registers.'
      : 'Nothing matches the filter.'
  tick()
}

const COLUMNS = 11

/**
 * One table for every service, a `tbody` each: the browser sizes the columns to their
 * content once for the whole page, so they line up from one service to the next.
 */
function board(sections) {
  return `<table class="board">
    <thead><tr>
      <th>Instance</th><th>Address</th><th>Status</th><th>Health</th><th>Zone</th><th>Version</th>
      <th class="num">Weight</th><th>Tags</th><th>Last heartbeat</th><th>Last check</th><th class="act"><span class="sr-only">Actions</span></th>
    </tr></thead>
    ${sections.join('')}
  </table>`
}

function section(name, all, rows, counts) {
  const isCollapsed = collapsed.has(name)
  const zones = [...new Set(all.map((i) => i.zone).filter((z) => z !== undefined))].sort()
  const rev = Math.max(...all.map((i) => i.revision))
  const n = all.length
  const bar = ['passing', 'unknown', 'critical']
    .filter((h) => counts[h] > 0)
    .map((h) => `<span class="seg ${h} w${Math.max(1, Math.round((counts[h] / n) * 20))}" title="${counts[h]} ${h}"></span>`)
    .join('')
  return `<tbody class="service${isCollapsed ? ' collapsed' : ''}" data-service="${esc(name)}">
  <tr class="group"><td colspan="${COLUMNS}"><div class="group-head">
    <button type="button" class="toggle" data-action="toggle" data-service="${esc(name)}" aria-expanded="${!isCollapsed}" aria-label="Show or hide ${esc(name)}"></button>
    <h2>${esc(name)}</h2>
    <span class="healthbar" aria-hidden="true">${bar}</span>
    <span class="counts">
      <span><b>${n}</b> instance${n === 1 ? '' : 's'}</span>
      <span class="${counts.routable === 0 ? 'bad' : counts.routable < n ? 'warn' : 'good'}"><b>${counts.routable}</b> routable</span>
      ${counts.critical > 0 ? `<span class="bad"><b>${counts.critical}</b> critical</span>` : ''}
      ${counts.unknown > 0 ? `<span class="warn"><b>${counts.unknown}</b> unknown</span>` : ''}
    </span>
    <span class="zones">${zones.map((z) => `<span class="chip">${esc(z)}</span>`).join('')}</span>
    <span class="rev" title="Revision of this service's last change">rev ${rev}</span>
  </div></td></tr>
  ${isCollapsed ? '' : rows.map(row).join('')}
</tbody>`
}

function row(i) {
  const key = `${i.service}/${i.id}`
  const flash = i.revision > renderedRevision ? ' flash' : ''
  const tags = i.tags.map((t) => `<span class="tag">${esc(t)}</span>`).join('')
  const meta = Object.entries(i.metadata)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n')
  const draining = i.status === 'draining' || i.status === 'out_of_service'
  return `<tr data-key="${esc(key)}" class="h-${i.health}${flash}">
    <td class="id mono" title="${esc(`${key}${meta === '' ? '' : `\n${meta}`}`)}">${esc(i.id)}</td>
    <td class="addr mono" title="${esc(`${i.scheme}://${i.host}:${i.port}`)}">${esc(i.host)}<span class="port">:${i.port}</span>${i.scheme === 'http' ? '' : `<span class="scheme">${esc(i.scheme)}</span>`}</td>
    <td class="status"><span class="pill s-${i.status}">${esc(i.status.replace('_', ' '))}</span></td>
    <td class="health"><span class="badge ${i.health}">${esc(i.health)}</span></td>
    <td class="zone">${i.zone === undefined ? '<span class="none">—</span>' : esc(i.zone)}</td>
    <td class="version mono">${i.version === undefined ? '<span class="none">—</span>' : esc(i.version)}</td>
    <td class="num weight${i.weight === 0 ? ' zero' : ''}">${i.weight}</td>
    <td class="tags">${tags === '' ? '<span class="none">—</span>' : tags}</td>
    <td class="beat">${heartbeat(i)}</td>
    <td class="check">${check(i)}</td>
    <td class="act"><div class="actions">
      ${
        draining
          ? `<button type="button" data-action="resume" data-service="${esc(i.service)}" data-id="${esc(i.id)}" title="Set status up: it takes traffic again">Resume</button>`
          : `<button type="button" data-action="drain" data-service="${esc(i.service)}" data-id="${esc(i.id)}" title="Set status draining: registered, no new traffic">Drain</button>`
      }
      <button type="button" class="danger" data-action="deregister" data-service="${esc(i.service)}" data-id="${esc(i.id)}" title="Remove it from the registry now">Deregister</button>
    </div></td>
  </tr>`
}

/**
 * Heartbeats renew the lease without a change, so they are not pushed: while the lease
 * holds, the last one came within the TTL; once it lapsed (critical, and not for a failing
 * check) the time of the last one is exact, and so is when the instance will be removed.
 */
function heartbeat(i) {
  const failingCheck = i.lastCheck !== undefined && !i.lastCheck.ok
  if (i.health !== 'critical' || failingCheck) {
    return `<span class="muted" title="Renewed every ${Math.round(i.ttlSeconds / 3)}s; heartbeats that change nothing are not pushed">within ${duration(i.ttlSeconds)}</span>`
  }
  const removal = Date.parse(i.expiresAt) + i.deregisterAfterSeconds * 1000
  return `<span class="lapsed" data-ago="${esc(i.lastHeartbeatAt)}" title="Lease lapsed at ${esc(i.expiresAt)}"></span><span class="removal" data-until="${removal}"></span>`
}

function check(i) {
  const r = i.lastCheck
  if (r === undefined) {
    if (i.check === undefined) return '<span class="none">—</span>'
    return `<span class="muted">${esc(i.check.type)}${i.check.type === 'http' ? ` ${esc(i.check.path)}` : ''} · pending</span>`
  }
  const what = r.ok ? (r.statusCode !== undefined ? String(r.statusCode) : 'ok') : (r.error ?? (r.statusCode !== undefined ? `status ${r.statusCode}` : 'failed'))
  const target = i.check === undefined ? '' : `${i.check.type}${i.check.type === 'http' ? ` ${i.check.path}` : ''}, every ${i.check.intervalSeconds}s`
  // A failure's reason says more than its duration; the duration stays in the tooltip.
  const took = `${Math.round(r.durationMs)} ms`
  return `<span class="result ${r.ok ? 'ok' : 'fail'}" title="${esc(`${target}; took ${took}`)}"><span class="mark" aria-hidden="true">${r.ok ? '✓' : '✗'}</span>${esc(what)} <span class="muted">· ${r.ok ? `${took} · ` : ''}<span data-ago="${esc(r.at)}"></span></span></span>`
}

function duration(seconds) {
  return seconds < 120 ? `${seconds}s` : seconds < 7200 ? `${Math.round(seconds / 60)}m` : `${Math.round(seconds / 3600)}h`
}

function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000))
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`
}

/** Updates relative times in place, once a second: no re-render, no request. */
function tick() {
  const now = Date.now()
  for (const el of document.querySelectorAll('[data-ago]')) el.textContent = `${ago(now - Date.parse(el.dataset.ago))} ago`
  for (const el of document.querySelectorAll('[data-until]')) {
    const left = Number(el.dataset.until) - now
    el.textContent = left > 0 ? ` · removal in ${ago(left)}` : ' · removal due'
  }
}
setInterval(tick, 1000)

// ---------------------------------------------------------------------------------------
// Actions: drain, resume, deregister, each confirmed first.

const ACTIONS = {
  drain: {
    title: 'Drain this instance?',
    text: 'It stays registered and keeps its lease, but is no longer routable: clients stop sending it new requests within a moment. In-flight requests finish.',
    button: 'Drain',
    danger: false,
    request: (s, id) => api('PATCH', `/v1/services/${s}/instances/${id}`, { status: 'draining' }),
    done: (s, id) => `${s}/${id} is draining.`,
  },
  resume: {
    title: 'Resume this instance?',
    text: 'Its status goes back to up: it takes traffic again as soon as its health is passing.',
    button: 'Resume',
    danger: false,
    request: (s, id) => api('PATCH', `/v1/services/${s}/instances/${id}`, { status: 'up' }),
    done: (s, id) => `${s}/${id} is up again.`,
  },
  deregister: {
    title: 'Deregister this instance?',
    text: 'It is removed from the registry now. If its process is still running with the SDK, it registers again on its next heartbeat: to take it out for good, drain it and stop the process.',
    button: 'Deregister',
    danger: true,
    request: (s, id) => api('DELETE', `/v1/services/${s}/instances/${id}`),
    done: (s, id) => `${s}/${id} was deregistered.`,
  },
}

async function api(method, path, body) {
  const headers = {}
  if (token !== '') headers.authorization = `Bearer ${token}`
  if (body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(path, { method, headers, ...(body !== undefined && { body: JSON.stringify(body) }) })
  if (res.ok) return
  let message = `HTTP ${res.status}`
  try {
    const err = (await res.json()).error
    if (err !== undefined) message = `${err.message} (${err.code})`
  } catch {
    // not the error shape: keep the status
  }
  if (res.status === 401 || res.status === 403) message += token === '' ? ': paste an admin token above' : ': this token may not do that'
  throw new Error(message)
}

function confirmAction(action, service, id) {
  const a = ACTIONS[action]
  const dialog = $('confirm')
  $('confirm-title').textContent = a.title
  $('confirm-text').textContent = a.text
  $('confirm-target').textContent = `${service}/${id}`
  const ok = $('confirm-ok')
  ok.textContent = a.button
  ok.className = a.danger ? 'danger' : 'primary'
  dialog.returnValue = ''
  dialog.onclose = async () => {
    dialog.onclose = null
    if (dialog.returnValue !== 'ok') return
    try {
      await a.request(encodeURIComponent(service), encodeURIComponent(id))
      toast(a.done(service, id), 'ok')
    } catch (err) {
      toast(`Could not ${action} ${service}/${id}: ${err.message}`, 'error')
    }
  }
  dialog.showModal()
  $('confirm-cancel').focus()
}

function toast(text, kind) {
  const el = document.createElement('div')
  el.className = `toast ${kind}`
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status')
  el.title = 'Click to dismiss'
  el.addEventListener('click', () => el.remove())
  el.textContent = text
  $('toasts').append(el)
  setTimeout(() => el.remove(), kind === 'error' ? 8000 : 4000)
}

// ---------------------------------------------------------------------------------------
// Wiring

$('services').addEventListener('click', (event) => {
  const button = event.target.closest('button[data-action]')
  if (button === null) return
  const { action, service, id } = button.dataset
  if (action === 'toggle') {
    if (collapsed.has(service)) collapsed.delete(service)
    else collapsed.add(service)
    sessionStorage.setItem(COLLAPSED_KEY, JSON.stringify([...collapsed]))
    render()
    return
  }
  if (action in ACTIONS) confirmAction(action, service, id)
})

const filter = $('filter')
try {
  query = location.hash.startsWith('#q=') ? decodeURIComponent(location.hash.slice(3)) : ''
} catch {
  query = ''
}
filter.value = query
filter.addEventListener('input', () => {
  query = filter.value.trim()
  history.replaceState(null, '', query === '' ? location.pathname : `#q=${encodeURIComponent(query)}`)
  render()
})
document.addEventListener('keydown', (event) => {
  if (event.key === '/' && document.activeElement !== filter && !(event.target instanceof HTMLInputElement)) {
    event.preventDefault()
    filter.focus()
    filter.select()
  } else if (event.key === 'Escape' && document.activeElement === filter) {
    filter.value = ''
    filter.dispatchEvent(new Event('input'))
  }
})

for (const button of document.querySelectorAll('.views button')) {
  button.addEventListener('click', () => {
    view = button.dataset.view
    for (const b of document.querySelectorAll('.views button')) b.setAttribute('aria-pressed', String(b === button))
    render()
  })
}

function showToken() {
  $('token').value = ''
  $('token').placeholder = token === '' ? 'Admin token' : 'Token set'
  $('token-form').classList.toggle('set', token !== '')
  $('token-clear').hidden = token === ''
}
$('token-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const value = $('token').value.trim()
  if (value === '') return
  token = value
  sessionStorage.setItem(TOKEN_KEY, token)
  showToken()
  toast('Token kept for this tab. Actions and the live view use it.', 'ok')
  reconnectNow()
})
$('token-clear').addEventListener('click', () => {
  token = ''
  sessionStorage.removeItem(TOKEN_KEY)
  showToken()
  reconnectNow()
})
showToken()
$('where').textContent = location.host
document.title = `rollcall · ${location.host}`

render()
connect()
