// Flotilla's web UI: one hand-written module, no framework, no build step.
// It reads only the Marathon v2 API of the replica that served it (same
// origin, same credentials) and stays current through /v2/events. Every
// value reaches the page through textContent, never innerHTML, so app
// names and task output cannot inject markup.

const main = document.getElementById('main');
const live = document.getElementById('live');

// h builds an element: h('a', {href: '#/'}, 'text', child…).
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === undefined || kid === null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

// api calls the API; a non-2xx answer throws an Error carrying Marathon's
// {message, details}.
async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: 'same-origin' };
  if (body !== undefined) { opts.headers['Content-Type'] = 'application/json'; opts.body = typeof body === 'string' ? body : JSON.stringify(body); }
  const res = await fetch(path, opts);
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { message: text }; }
  if (!res.ok) {
    const err = new Error((data && data.message) || res.statusText);
    err.status = res.status; err.details = (data && data.details) || [];
    throw err;
  }
  return data;
}

function errorBox(err) {
  return h('div', { class: 'errors', role: 'alert' },
    h('strong', {}, err.status ? `${err.status}: ` : '', err.message),
    err.details && err.details.length ? h('ul', {}, err.details.map(d => h('li', {}, h('code', {}, d.path), ' ', (d.errors || []).join('; ')))) : null);
}

const appPath = id => '/v2/apps' + id;
const age = ts => { if (!ts) return ''; const s = Math.max(0, (Date.now() - Date.parse(ts)) / 1000); return s < 90 ? `${s | 0}s` : s < 5400 ? `${(s / 60) | 0}m` : s < 172800 ? `${(s / 3600) | 0}h` : `${(s / 86400) | 0}d`; };

// dnsName is the app's Mesos-DNS name: the app id's segments reversed,
// joined with "-" (Marathon's task name, sanitised), under the framework.
let framework = 'flotilla';
function dnsName(id) {
  const label = id.split('/').filter(Boolean).reverse().join('-').toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '').slice(0, 63);
  return `${label}.${framework}.mesos`;
}

// counts splits an app's instances for the health bar.
function counts(a) {
  const healthy = a.healthChecks && a.healthChecks.length ? a.tasksHealthy : a.tasksRunning;
  const unhealthy = a.tasksUnhealthy || 0, staged = a.tasksStaged || 0;
  const waiting = Math.max(0, a.instances - healthy - unhealthy - staged);
  return { healthy, unhealthy, staged, waiting };
}

function healthBar(a) { return bar(counts(a)); }

// bar draws the health bar of counts: one app's, or a group's totals.
function bar(c) {
  const total = Math.max(1, c.healthy + c.unhealthy + c.staged + c.waiting);
  const seg = (cls, n, what) => { const i = h('i', { class: cls, title: `${n} ${what}` }); i.style.width = `${(100 * n) / total}%`; return i; };
  return h('span', { class: 'bar', role: 'img', 'aria-label': `${c.healthy} healthy, ${c.unhealthy} unhealthy, ${c.staged} staged, ${c.waiting} waiting` },
    seg('h', c.healthy, 'healthy'), seg('u', c.unhealthy, 'unhealthy'), seg('s', c.staged, 'staged'), seg('w', c.waiting, 'waiting'));
}

// ---- live updates: one EventSource; pages re-read what they show, at
// most once a second however many events arrive (batched).
let dirty = false, refresh = null;
function connectEvents() {
  const es = new EventSource('/v2/events');
  es.onopen = () => { live.textContent = 'live'; live.className = 'live on'; };
  es.onerror = () => { live.textContent = 'reconnecting…'; live.className = 'live off'; };
  const mark = () => { dirty = true; };
  for (const t of ['status_update_event', 'health_status_changed_event', 'deployment_info', 'deployment_success', 'deployment_failed',
    'deployment_step_success', 'deployment_step_failure', 'api_post_event', 'app_terminated_event', 'autoscale_decision', 'event_stream_lagged',
    'pod_created_event', 'pod_updated_event', 'pod_deleted_event', 'instance_changed_event']) {
    es.addEventListener(t, mark);
  }
}
// One refresh at a time: a read slower than a second (a 10,000-app list on
// a busy machine) is not overtaken by the next.
let refreshing = false;
setInterval(() => {
  if (!dirty || !refresh || refreshing) return;
  dirty = false; refreshing = true;
  refresh().catch(showFatal).finally(() => { refreshing = false; });
}, 1000);

function showFatal(err) { main.replaceChildren(errorBox(err)); }

// ---- apps and groups as a tree, virtualised: only the rows in view exist
// in the DOM, so 10,000 apps render as fast as 30. The tree (from the list
// worker, with each group's totals) is flattened into the rows of the
// open groups on each read, expand or filter: a walk over 10,000 apps
// takes a few milliseconds, far less than one redraw of the DOM.
const ROW = 36;
// open holds the groups a user expanded or collapsed (id → bool); others
// take the default, top-level groups open, so a large tree starts as a
// screenful of groups rather than 10,000 rows. cursor is the key of the
// row that has the keyboard focus, kept across reads and re-renders.
let listState = { root: null, filter: '', open: new Map(), cursor: null };
const isOpen = (g, depth) => (listState.open.has(g.id) ? listState.open.get(g.id) : depth === 0);

// flatten lists the rows to show: groups before apps at each level, the
// apps of open groups; with a filter, only matching apps and the groups
// that hold them, opened. It returns the number of apps listed.
function flatten(g, depth, f, out) {
  let n = 0;
  for (const s of g.groups) {
    if (f) {
      const sub = [];
      const m = flatten(s, depth + 1, f, sub);
      if (m) { out.push({ group: s, depth, parent: g.id, open: true }); for (const r of sub) out.push(r); n += m; }
      continue;
    }
    const open = isOpen(s, depth);
    out.push({ group: s, depth, parent: g.id, open });
    if (open) n += flatten(s, depth + 1, f, out);
  }
  for (const a of g.apps) {
    if (f && !a.id.toLowerCase().includes(f)) continue;
    out.push({ app: a, depth, parent: g.id });
    n++;
  }
  return n;
}
const rowKey = r => (r.group ? 'g:' + r.group.id : 'a:' + r.app.id);

async function appsPage() {
  const filter = h('input', { type: 'search', placeholder: 'Filter apps (press /)', 'aria-label': 'Filter apps', value: listState.filter });
  const summary = h('span', { class: 'muted' });
  const head = h('div', { class: 'grid list-head', role: 'row' },
    h('span', {}, 'App or group'), h('span', {}, 'Instances'), h('span', {}, 'Health'), h('span', { class: 'hide-sm' }, 'CPU'), h('span', { class: 'hide-sm' }, 'Mem'), h('span', { class: 'hide-sm' }, 'Exposure'), h('span', { class: 'hide-sm' }, 'DNS name'));
  const box = h('div', { class: 'vlist', role: 'tree', 'aria-label': 'Apps and groups (arrow keys move, right and left expand and collapse, Enter opens)' });
  const spacer = h('div', { class: 'spacer' });
  box.append(spacer);
  main.replaceChildren(h('h1', {}, 'Apps'), h('div', { class: 'toolbar' }, filter, summary), head, box);
  let rows = [];
  const num = v => String(Math.round(v * 100) / 100);
  const rowEl = (r, i) => {
    const focus = listState.cursor === rowKey(r) || (listState.cursor === null && i === 0);
    const common = { role: 'treeitem', 'aria-level': r.depth + 1, 'data-key': rowKey(r), tabindex: focus ? 0 : -1 };
    const name = h('span', { class: 'name' });
    name.style.paddingLeft = `${r.depth * 18}px`;
    let row;
    if (r.group) {
      const t = r.group.total;
      name.append(h('span', { class: 'caret', 'aria-hidden': 'true' }, r.open ? '▾' : '▸'), r.group.id);
      row = h('div', { ...common, class: 'vrow grid group', 'aria-expanded': String(r.open), 'data-group': r.group.id },
        name, h('span', {}, `${t.healthy}/${t.instances}`), bar(t),
        h('span', { class: 'hide-sm' }, num(t.cpus)), h('span', { class: 'hide-sm' }, `${num(t.mem)} MiB`),
        h('span', { class: 'hide-sm muted' }, `${t.apps} app${t.apps === 1 ? '' : 's'}`), h('span', { class: 'hide-sm' }));
    } else {
      const a = r.app, c = counts(a);
      const ext = a.exposure && a.exposure.mode === 'external';
      name.append(h('span', { class: 'caret', 'aria-hidden': 'true' }), a.id);
      if (a.pod) name.append(' ', h('span', { class: 'tag' }, 'pod'));
      row = h('a', { ...common, class: 'vrow grid', href: (a.pod ? '#/pod' : '#/app') + a.id, 'data-app': a.id },
        name, h('span', {}, `${c.healthy}/${a.instances}`), healthBar(a),
        h('span', { class: 'hide-sm' }, a.cpus), h('span', { class: 'hide-sm' }, `${a.mem} MiB`),
        h('span', { class: 'hide-sm' }, h('span', { class: 'tag' + (ext ? ' external' : '') }, ext ? 'external' : 'internal')),
        h('span', { class: 'hide-sm' }, dnsName(a.id)));
    }
    row.style.transform = `translateY(${i * ROW}px)`;
    return row;
  };
  const render = () => {
    // Re-rendering replaces the focused row: put the focus back on its
    // successor, or a keyboard user loses their place every second.
    const hadFocus = box.contains(document.activeElement);
    const start = Math.max(0, Math.floor(box.scrollTop / ROW) - 5);
    const end = Math.min(rows.length, start + Math.ceil(box.clientHeight / ROW) + 10);
    const frag = document.createDocumentFragment();
    for (let i = start; i < end; i++) frag.append(rowEl(rows[i], i));
    spacer.style.height = `${rows.length * ROW}px`;
    spacer.replaceChildren(frag);
    if (hadFocus) { const el = spacer.querySelector('[tabindex="0"]'); if (el) el.focus({ preventScroll: true }); }
  };
  const apply = () => {
    const f = listState.filter.toLowerCase();
    rows = [];
    const n = listState.root ? flatten(listState.root, 0, f, rows) : 0;
    const total = listState.root ? listState.root.total.apps : 0;
    summary.textContent = f ? `${n} of ${total} apps` : `${total} apps`;
    if (listState.cursor !== null && !rows.some(r => rowKey(r) === listState.cursor)) listState.cursor = null;
    render();
  };
  // moveTo puts the cursor on row i, scrolled into view, and focuses it.
  const moveTo = i => {
    if (!rows.length) return;
    i = Math.max(0, Math.min(rows.length - 1, i));
    listState.cursor = rowKey(rows[i]);
    if (i * ROW < box.scrollTop) box.scrollTop = i * ROW;
    else if ((i + 1) * ROW > box.scrollTop + box.clientHeight) box.scrollTop = (i + 1) * ROW - box.clientHeight;
    render();
    const el = spacer.querySelector(`[data-key="${CSS.escape(listState.cursor)}"]`);
    if (el) el.focus({ preventScroll: true });
  };
  const toggle = (r, open) => { listState.open.set(r.group.id, open); listState.cursor = rowKey(r); apply(); moveTo(rows.findIndex(x => rowKey(x) === rowKey(r))); };
  box.addEventListener('keydown', e => {
    const el = e.target.closest('[data-key]');
    const i = el ? rows.findIndex(r => rowKey(r) === el.dataset.key) : -1;
    if (i < 0) return;
    const r = rows[i];
    const keys = {
      ArrowDown: () => moveTo(i + 1), ArrowUp: () => moveTo(i - 1), Home: () => moveTo(0), End: () => moveTo(rows.length - 1),
      PageDown: () => moveTo(i + Math.floor(box.clientHeight / ROW)), PageUp: () => moveTo(i - Math.floor(box.clientHeight / ROW)),
      ArrowRight: () => { if (r.group && !r.open) toggle(r, true); else if (r.group) moveTo(i + 1); },
      ArrowLeft: () => {
        if (r.group && r.open && !listState.filter) toggle(r, false);
        else { const p = rows.findIndex(x => x.group && x.group.id === r.parent); if (p >= 0) moveTo(p); }
      },
      // Enter on an app row is the link's own: it opens the app.
      Enter: () => { if (r.group && !listState.filter) toggle(r, !r.open); },
      ' ': () => { if (r.group && !listState.filter) toggle(r, !r.open); },
    };
    if (!keys[e.key] || (e.key === 'Enter' && r.app)) return;
    e.preventDefault();
    keys[e.key]();
  });
  box.addEventListener('click', e => {
    const el = e.target.closest('[data-group]');
    if (!el || listState.filter) return;
    const r = rows.find(x => x.group && x.group.id === el.dataset.group);
    if (r) toggle(r, !r.open);
  });
  let raf = 0;
  box.addEventListener('scroll', () => { if (!raf) raf = requestAnimationFrame(() => { raf = 0; render(); }); });
  filter.addEventListener('input', () => { listState.filter = filter.value; box.scrollTop = 0; apply(); });
  refresh = async () => {
    // Marks for bench/ and the browser's performance panel: how long a
    // list read takes, and when the first rows were on screen.
    const t0 = performance.now();
    listState.root = await readAppList();
    apply();
    performance.measure('flotilla:apps-refresh', { start: t0 });
    if (!performance.getEntriesByName('flotilla:apps-rendered').length) performance.mark('flotilla:apps-rendered');
    main.dataset.ready = 'apps';
  };
  await refresh();
}

// readAppList asks the list worker for the group tree (/v2/groups), parsed
// and cut down to what a row shows, so the page's main thread never parses
// the whole list.
let listWorker = null, listSeq = 0;
const listWaiters = new Map();
function readAppList() {
  if (!listWorker) {
    listWorker = new Worker('/ui/list-worker.js');
    listWorker.onmessage = ev => {
      const w = listWaiters.get(ev.data.seq);
      if (!w) return;
      listWaiters.delete(ev.data.seq);
      if (ev.data.error) { const e = new Error(ev.data.error.message); e.status = ev.data.error.status; e.details = ev.data.error.details || []; w.reject(e); } else w.resolve(ev.data.root);
    };
    listWorker.onerror = ev => { for (const w of listWaiters.values()) w.reject(new Error(`the list worker failed: ${ev.message}`)); listWaiters.clear(); };
  }
  const seq = ++listSeq;
  return new Promise((resolve, reject) => { listWaiters.set(seq, { resolve, reject }); listWorker.postMessage(seq); });
}

// ---- one app
async function appPage(id) {
  let logCtl = null;
  const stopLogs = () => { if (logCtl) { logCtl.abort(); logCtl = null; } };
  const sections = {
    head: h('div'), actions: h('div', { class: 'toolbar' }), status: h('div'), tasks: h('div'), logs: h('div'),
    deploy: h('div'), queue: h('div'), versions: h('div', { id: 'versions' }), config: h('div', { id: 'config' }), autoscale: h('div', { id: 'autoscale' }), discovery: h('div', { id: 'discovery' }),
  };
  main.replaceChildren(sections.head, sections.actions, sections.deploy, sections.queue, sections.status, sections.tasks, sections.discovery, sections.logs, sections.versions, sections.config, sections.autoscale);
  const msg = h('div', { role: 'status', 'aria-live': 'polite', id: 'action-msg' });

  const act = async (label, method, path, body) => {
    msg.replaceChildren(h('span', { class: 'muted' }, `${label}…`));
    try { await api(method, path, body); msg.replaceChildren(h('span', { class: 'ok' }, `${label}: accepted`)); dirty = true; return true; }
    catch (e) { msg.replaceChildren(errorBox(e)); return false; }
  };
  const scaleIn = h('input', { type: 'number', min: 0, 'aria-label': 'Instances', id: 'scale-n' });
  sections.actions.append(
    h('label', { for: 'scale-n' }, 'Instances'), scaleIn,
    h('button', { id: 'scale', onclick: () => act('Scale', 'PUT', appPath(id), { instances: Number(scaleIn.value) }) }, 'Scale'),
    h('button', { id: 'restart', onclick: () => act('Restart', 'POST', appPath(id) + '/restart') }, 'Restart'),
    h('button', { id: 'suspend', onclick: () => act('Suspend', 'PUT', appPath(id), { instances: 0 }) }, 'Suspend'),
    h('a', { href: '#/edit' + id }, 'Edit JSON'),
    h('button', { id: 'destroy', class: 'danger', onclick: () => confirmDestroy(id) }, 'Destroy'),
    msg);

  const logView = h('pre', { id: 'log', tabindex: 0, 'aria-label': 'Task log' });
  const logTask = h('select', { 'aria-label': 'Task', id: 'log-task' });
  const logStream = h('select', { 'aria-label': 'Stream', id: 'log-stream' }, h('option', { value: 'stdout' }, 'stdout'), h('option', { value: 'stderr' }, 'stderr'));
  const follow = h('input', { type: 'checkbox', id: 'log-follow' });
  const showLogs = async () => {
    stopLogs();
    const task = logTask.value;
    if (!task) { logView.textContent = 'No task selected.'; return; }
    logCtl = new AbortController();
    const q = new URLSearchParams({ stream: logStream.value, tail: '200' });
    if (follow.checked) q.set('follow', 'true');
    logView.textContent = '';
    try {
      const res = await fetch(`${appPath(id)}/tasks/${encodeURIComponent(task)}/logs?${q}`, { signal: logCtl.signal, credentials: 'same-origin' });
      if (!res.ok) { const e = await res.json().catch(() => ({ message: res.statusText })); logView.textContent = `${res.status}: ${e.message}`; return; }
      const rd = res.body.getReader(), dec = new TextDecoder();
      for (;;) {
        const { value, done } = await rd.read();
        if (done) break;
        // Keep the last 256 KiB: a long follow must not grow the page forever.
        logView.textContent = (logView.textContent + dec.decode(value, { stream: true })).slice(-262144);
        logView.scrollTop = logView.scrollHeight;
      }
      logView.dataset.done = '1';
    } catch (e) { if (e.name !== 'AbortError') logView.textContent += `\n[${e.message}]`; }
  };
  sections.logs.append(h('h2', {}, 'Logs'), h('div', { class: 'toolbar' }, logTask, logStream, h('label', {}, follow, ' follow'),
    h('button', { id: 'log-show', onclick: showLogs }, 'Show'), h('button', { onclick: stopLogs }, 'Stop')), logView);

  let versionsLoaded = false, autoscaled = false;
  refresh = async () => {
    const [{ app }, deps, queue, ended] = await Promise.all([api('GET', appPath(id) + '?embed=app.tasks&embed=app.lastTaskFailure'), api('GET', '/v2/deployments'), api('GET', '/v2/queue'),
      api('GET', appPath(id) + '/tasks/ended')]);
    const c = counts(app);
    const ext = app.exposure && app.exposure.mode === 'external';
    autoscaled = !!app.autoscale;
    sections.head.replaceChildren(h('h1', {}, app.id), h('div', { class: 'cards' },
      h('div', { class: 'card' }, h('b', {}, 'Instances'), h('span', { id: 'instances' }, `${c.healthy} healthy of ${app.instances}`), healthBar(app)),
      h('div', { class: 'card' }, h('b', {}, 'Resources'), `${app.cpus} CPU, ${app.mem} MiB`),
      h('div', { class: 'card' }, h('b', {}, 'Exposure'), ext ? `external ${(app.exposure.vhosts || []).join(', ')}` : 'internal'),
      h('div', { class: 'card' }, h('b', {}, 'DNS'), dnsName(app.id), h('br'), `_${dnsName(app.id).split('.')[0]}._tcp.${framework}.mesos SRV`),
      h('div', { class: 'card' }, h('b', {}, 'Version'), app.version)));
    if (document.activeElement !== scaleIn) scaleIn.value = app.instances;

    const dep = (deps || []).find(d => (d.affectedApps || []).includes(app.id));
    sections.deploy.replaceChildren(dep ? h('div', { id: 'deployment' }, h('h2', {}, dep.rollback ? 'Rollback in progress' : 'Deployment in progress'),
      h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': dep.totalSteps, 'aria-valuenow': dep.currentStep },
        (() => { const i = h('i'); i.style.width = `${(100 * dep.currentStep) / Math.max(1, dep.totalSteps)}%`; return i; })()),
      h('p', {}, `Step ${dep.currentStep} of ${dep.totalSteps}: `, (dep.currentActions || []).map(a => a.action).join(', '), dep.progress ? ` — ${dep.progress}` : ''),
      h('button', { onclick: () => act('Cancel deployment', 'DELETE', '/v2/deployments/' + dep.id) }, 'Cancel (roll back)'))
      : h('p', { id: 'deployment', class: 'muted', 'data-state': 'none' }, 'No deployment in progress.'));

    const q = (queue.queue || []).find(e => e.app && e.app.id === app.id);
    const reasons = q ? [q.reason, ...((q.processedOffersSummary || {}).rejectSummaryLastOffers || []).filter(r => r.declined > 0).map(r => `${r.reason}: ${r.declined} of ${r.processed} offers`)].filter(Boolean) : [];
    const failure = app.lastTaskFailure;
    sections.queue.replaceChildren(
      q ? h('div', { id: 'queue', class: 'card' }, h('b', {}, `Waiting: ${q.count} instance(s)`), q.delay && q.delay.timeLeftSeconds > 0 ? h('div', {}, `backing off for ${q.delay.timeLeftSeconds}s after failures`) : null,
        reasons.length ? h('ul', {}, reasons.map(r => h('li', {}, r))) : h('div', { class: 'muted' }, 'waiting for offers')) : '',
      failure ? h('div', { id: 'last-failure', class: 'card' }, h('b', {}, `Last failure ${age(failure.timestamp)} ago: ${failure.state} (${failure.taskId})`), h('pre', {}, failure.message)) : '');

    const tasks = app.tasks || [];
    const cur = logTask.value;
    // Tasks that ended within the hour still have their sandbox: their
    // logs are readable too.
    const endedTasks = (ended && ended.tasks) || [];
    logTask.replaceChildren(...tasks.map(t => h('option', { value: t.id }, t.id)),
      ...endedTasks.map(t => h('option', { value: t.id }, `${t.id} (${t.state.replace('TASK_', '').toLowerCase()} ${age(t.endedAt)} ago)`)),
      failure && !endedTasks.some(t => t.id === failure.taskId) ? h('option', { value: failure.taskId }, `${failure.taskId} (failed)`) : '');
    if (cur && [...logTask.options].some(o => o.value === cur)) logTask.value = cur;
    sections.tasks.replaceChildren(h('h2', {}, `Tasks (${tasks.length})`), h('table', { id: 'tasks' },
      h('thead', {}, h('tr', {}, ['Task', 'Host', 'Ports', 'State', 'Health', 'Ready', 'Age'].map((c, i) => h('th', { class: i === 2 || i === 5 ? 'hide-sm' : null }, c)))),
      h('tbody', {}, tasks.map(t => {
        const hr = t.healthCheckResults || [];
        // One result per check that has one: unhealthy once one fails,
        // healthy once every check of the app passed.
        const checks = (app.healthChecks || []).length;
        const health = hr.some(r => !r.alive) ? 'unhealthy' : checks ? (hr.length >= checks ? 'healthy' : 'pending') : (hr.length ? 'healthy' : '—');
        return h('tr', { 'data-task': t.id }, h('td', {}, h('a', { href: '#', onclick: ev => { ev.preventDefault(); logTask.value = t.id; showLogs(); } }, t.id)),
          h('td', {}, t.host), h('td', { class: 'hide-sm' }, (t.ports || []).join(', ')), h('td', {}, t.state),
          h('td', { class: health === 'healthy' ? 'ok' : health === 'unhealthy' ? 'bad' : 'muted' }, health),
          h('td', { class: 'hide-sm' }, t.ready === undefined ? '—' : String(t.ready)), h('td', {}, age(t.startedAt || t.stagedAt)));
      }))));

    // Secrets by reference only: the API never has their values.
    const secrets = Object.entries(app.secrets || {});
    const env = Object.entries(app.env || {});
    sections.config.replaceChildren(h('h2', {}, 'Configuration'),
      secrets.length ? h('div', { id: 'secrets' }, h('b', {}, 'Secrets (references; values are never shown or known here)'),
        h('ul', {}, secrets.map(([name, s]) => h('li', {}, h('code', {}, name), ' ← ', h('code', {}, s.source || JSON.stringify(s)))))) : '',
      h('table', {}, h('tbody', {}, env.map(([k, v]) => h('tr', {}, h('td', {}, h('code', {}, k)), h('td', {}, typeof v === 'object' ? h('span', { class: 'muted' }, `secret ${v.secret}`) : h('code', {}, v)))))));

    if (!versionsLoaded) { versionsLoaded = true; loadVersions(id, sections.versions, act).catch(e => sections.versions.replaceChildren(errorBox(e))); }
    api('GET', appPath(id) + '/autoscale').then(d => autoscaleView(sections.autoscale, d)).catch(() => sections.autoscale.replaceChildren());
    discoveryView(sections.discovery, app).catch(e => sections.discovery.replaceChildren(h('h2', {}, 'DNS and gateway'), errorBox(e)));
    main.dataset.ready = 'app';
  };
  await refresh();
  // The autoscaler folds identical decisions into one entry and sends no
  // event for them, so nothing marks a steady autoscaled app's page stale:
  // its decisions are re-read every 5 s.
  const poll = setInterval(() => { if (autoscaled) dirty = true; }, 5000);
  return () => { stopLogs(); clearInterval(poll); };
}

// discoveryView: the app's DNS records as this replica's Mesos-DNS serves
// them (its HTTP API, mounted at /v1/) and its gateway routes as the
// discovery feed gives them to the gateway (/v2/apps/{id}/routes).
async function discoveryView(el, app) {
  const routes = await api('GET', appPath(app.id) + '/routes').catch(e => ({ error: e }));
  const name = routes.dnsName || dnsName(app.id);
  const srv = `_${name.split('.')[0]}._tcp.${name.split('.').slice(1).join('.')}`;
  const [hosts, services] = await Promise.all([api('GET', '/v1/hosts/' + encodeURIComponent(name)), api('GET', '/v1/services/' + encodeURIComponent(srv))]);
  const recs = [
    ...(hosts || []).filter(r => r.ip).map(r => [r.host, 'A', r.ip]),
    ...(services || []).filter(r => r.port).map(r => [r.service, 'SRV', `${r.host}:${r.port}`]),
  ];
  const table = (head, rows) => h('table', {}, h('thead', {}, h('tr', {}, head.map(c => h('th', {}, c)))), h('tbody', {}, rows.map(r => h('tr', {}, r.map(c => h('td', {}, h('code', {}, c)))))));
  el.replaceChildren(h('h2', {}, 'DNS and gateway'),
    recs.length ? table(['Name', 'Type', 'Value'], recs) : h('p', { class: 'muted' }, `No DNS records for ${name} (no running task yet).`),
    routes.error ? errorBox(routes.error) : !routes.routed ? h('p', { class: 'muted' }, 'The gateway does not route this app (not in its view yet).') :
      h('div', { id: 'routes' },
        h('p', {}, `Gateway: ${routes.listeners.join(' and ')} listener${routes.listeners.length > 1 ? 's' : ''}, by host ${routes.dnsName}`,
          (routes.exposure.vhosts || []).length ? `, ${routes.exposure.vhosts.join(', ')}` : '', (routes.exposure.paths || []).length ? ` (paths ${routes.exposure.paths.join(', ')})` : '',
          Object.keys(routes.gateway || {}).length ? ` — ${Object.entries(routes.gateway).map(([k, v]) => `${k} ${v}`).join(', ')}` : ''),
        routes.backends.length ? table(['Backend task', 'Address'], routes.backends.map(b => [b.taskId, `${b.host}:${b.port}`])) : h('p', { class: 'muted' }, 'No backend: no task is running and ready.')));
}

// autoscaleView plots the autoscaler's recent decisions (hand-written
// SVG): the metric against its target above, instances (current and
// desired) below, on one time axis; the last decisions as a table.
function autoscaleView(el, d) {
  const decisions = ((d && d.decisions) || []).filter(x => x && x.at);
  if (!decisions.length) { el.replaceChildren(); return; }
  el.replaceChildren(h('h2', {}, 'Autoscaler decisions'), autoscalePlot(decisions),
    h('table', {}, h('tbody', {}, decisions.slice(-10).reverse().map(x =>
      h('tr', {}, h('td', {}, age(x.at) + ' ago'), h('td', {}, `${x.metric.toFixed(2)} / ${x.target}`), h('td', {}, `${x.current} → ${x.desired}`), h('td', {}, x.error ? `${x.reason} (${x.error})` : x.reason))))));
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, ...kids) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const kid of kids) el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  return el;
}

function autoscalePlot(ds) {
  const W = 720, H = 260, L = 44, R = 12, T = 10, mid = 130, B = 24;
  // Up to now: the last decision holds until the next (identical ones
  // are folded into one entry, so a steady app has one).
  const now = new Date().toISOString();
  const t0 = Date.parse(ds[0].at), t1 = Math.max(t0 + 1000, Date.parse(now));
  const x = t => L + ((Math.min(Date.parse(t), t1) - t0) / (t1 - t0)) * (W - L - R);
  const mMax = Math.max(...ds.map(d => Math.max(d.metric, d.target))) * 1.1 || 1;
  const ym = v => T + (1 - v / mMax) * (mid - T - 14);
  const iMax = Math.max(1, ...ds.map(d => Math.max(d.current, d.desired)));
  const yi = v => mid + 10 + (1 - v / iMax) * (H - B - mid - 10);
  const line = (pts, cls) => svg('polyline', { points: pts.map(p => p.join(',')).join(' '), class: cls, fill: 'none' });
  const steps = f => [...ds.flatMap((d, i) => (i ? [[x(d.at), f(ds[i - 1])], [x(d.at), f(d)]] : [[x(d.at), f(d)]])), [x(now), f(ds[ds.length - 1])]];
  const label = (y, text) => svg('text', { x: L - 6, y: y + 4, 'text-anchor': 'end', class: 'axis' }, text);
  return svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'plot', role: 'img', id: 'autoscale-plot',
    'aria-label': `Autoscaler: metric against target, and instances, over the last ${ds.length} decisions` },
    svg('title', {}, 'Metric against target (top), instances current and desired (bottom)'),
    svg('line', { x1: L, x2: W - R, y1: mid, y2: mid, class: 'grid' }),
    label(ym(mMax / 1.1), (mMax / 1.1).toFixed(2)), label(ym(0), '0'), label(yi(iMax), iMax), label(yi(0), '0'),
    line(steps(d => ym(d.target)), 'target'), line(ds.map(d => [x(d.at), ym(d.metric)]), 'metric'),
    line(steps(d => yi(d.current)), 'current'), line(steps(d => yi(d.desired)), 'desired'),
    svg('text', { x: L, y: H - 6, class: 'axis' }, `${age(ds[0].at)} ago`), svg('text', { x: W - R, y: H - 6, 'text-anchor': 'end', class: 'axis' }, 'now'),
    svg('text', { x: W - R, y: T + 10, 'text-anchor': 'end', class: 'legend' }, svg('tspan', { class: 'metric-t' }, '— metric '), svg('tspan', { class: 'target-t' }, '— target')),
    svg('text', { x: W - R, y: mid + 20, 'text-anchor': 'end', class: 'legend' }, svg('tspan', { class: 'current-t' }, '— instances '), svg('tspan', { class: 'desired-t' }, '— desired')));
}

// Versions, with a line diff between any two and a rollback: Marathon's
// PUT {"version": V}, which the API turns into a deployment of that
// version.
async function loadVersions(id, el, act) {
  const { versions } = await api('GET', appPath(id) + '/versions');
  const a = h('select', { 'aria-label': 'Older version', id: 'v-a' }, versions.map(v => h('option', { value: v }, v)));
  const b = h('select', { 'aria-label': 'Newer version', id: 'v-b' }, versions.map(v => h('option', { value: v }, v)));
  if (versions.length > 1) a.value = versions[1];
  const out = h('pre', { class: 'diff', id: 'diff' });
  const strip = o => { for (const k of ['version', 'versionInfo']) delete o[k]; return JSON.stringify(o, null, 2).split('\n'); };
  const diff = async () => {
    const [va, vb] = await Promise.all([api('GET', `${appPath(id)}/versions/${a.value}`), api('GET', `${appPath(id)}/versions/${b.value}`)]);
    out.replaceChildren(...lineDiff(strip(va), strip(vb)).map(([op, line]) => h('div', { class: op === '+' ? 'add' : op === '-' ? 'del' : '' }, `${op} ${line}`)));
  };
  // The rollback makes a new version (the old definition again): the
  // list is read again once the API accepted it.
  const rollback = async () => { if (await act(`Roll back to ${a.value}`, 'PUT', appPath(id), { version: a.value })) await loadVersions(id, el, act); };
  const rb = h('button', { id: 'rollback', onclick: () => rollback().catch(e => out.replaceChildren(errorBox(e))) });
  const label = () => { rb.textContent = `Roll back to ${a.value}`; };
  a.addEventListener('change', label);
  label();
  el.replaceChildren(h('h2', {}, `Versions (${versions.length})`), h('div', { class: 'toolbar' }, a, ' vs ', b,
    h('button', { id: 'diff-btn', onclick: () => diff().catch(e => out.replaceChildren(errorBox(e))) }, 'Diff'), rb), out);
}

// lineDiff is a longest-common-subsequence diff of two short texts.
function lineDiff(a, b) {
  const n = a.length, m = b.length, L = Array.from({ length: n + 1 }, () => new Int32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) L[i][j] = a[i] === b[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const out = []; let i = 0, j = 0;
  while (i < n && j < m) { if (a[i] === b[j]) { out.push([' ', a[i]]); i++; j++; } else if (L[i + 1][j] >= L[i][j + 1]) out.push(['-', a[i++]]); else out.push(['+', b[j++]]); }
  while (i < n) out.push(['-', a[i++]]); while (j < m) out.push(['+', b[j++]]);
  return out;
}

function confirmDestroy(id) {
  const input = h('input', { 'aria-label': 'Type the app id to confirm', id: 'confirm-id' });
  const errs = h('div');
  const dlg = h('dialog', { 'aria-labelledby': 'dlg-title' }, h('h2', { id: 'dlg-title' }, `Destroy ${id}?`),
    h('p', {}, 'Every task is killed and the app removed. Type its id to confirm.'), input, errs,
    h('div', { class: 'toolbar' }, h('button', { onclick: () => dlg.close() }, 'Cancel'),
      h('button', { class: 'danger', id: 'confirm-destroy', onclick: async () => {
        if (input.value !== id) { errs.replaceChildren(h('p', { class: 'bad' }, 'The id does not match.')); return; }
        try { await api('DELETE', appPath(id)); dlg.close(); location.hash = '#/'; } catch (e) { errs.replaceChildren(errorBox(e)); }
      } }, 'Destroy')));
  document.body.append(dlg);
  dlg.addEventListener('close', () => dlg.remove());
  dlg.showModal();
  input.focus();
}

// ---- edit or create, with the API's 422 details shown inline.
const TEMPLATE = { id: '/hello', instances: 1, cpus: 0.1, mem: 32, cmd: 'while true; do echo hello; sleep 5; done' };
async function editPage(id) {
  let spec = TEMPLATE;
  if (id) {
    const { app } = await api('GET', appPath(id));
    spec = app;
    for (const k of ['version', 'versionInfo', 'tasks', 'deployments', 'tasksRunning', 'tasksStaged', 'tasksHealthy', 'tasksUnhealthy', 'lastTaskFailure']) delete spec[k];
  }
  const ta = h('textarea', { id: 'spec', 'aria-label': 'App definition (JSON)', spellcheck: 'false' });
  ta.value = JSON.stringify(spec, null, 2);
  const errs = h('div', { id: 'edit-errors', 'aria-live': 'assertive' });
  const submit = async () => {
    errs.replaceChildren();
    let body;
    try { body = JSON.parse(ta.value); } catch (e) { errs.replaceChildren(errorBox({ message: `Not JSON: ${e.message}` })); return; }
    try {
      const target = id || body.id;
      await api(id ? 'PUT' : 'POST', id ? appPath(id) : '/v2/apps', body);
      location.hash = '#/app' + (target.startsWith('/') ? target : '/' + target);
    } catch (e) { errs.replaceChildren(errorBox(e)); }
  };
  main.replaceChildren(h('h1', {}, id ? `Edit ${id}` : 'New app'), errs, ta,
    h('div', { class: 'toolbar' }, h('button', { class: 'primary', id: 'submit', onclick: submit }, id ? 'Deploy changes' : 'Create'),
      id ? h('a', { href: '#/app' + id }, 'Cancel') : null));
  ta.addEventListener('keydown', e => { if ((e.ctrlKey || e.metaKey) && e.key === 'Enter') submit(); });
  refresh = null;
  main.dataset.ready = 'edit';
}

// ---- cluster: leader and replicas (from /v2/info and /v2/leader), and the
// Mesos agents with their resources used and free: GET /flotilla/v1/agents,
// which this replica reads from the leading master's /master/slaves (or
// /master/state), since the page may talk to its own origin only.
async function clusterPage() {
  const fmt = v => String(Math.round(v * 100) / 100);
  // cell shows one resource of an agent: used of total, a bar, and free.
  const cell = (a, k, unit) => {
    const used = a.used[k], total = a.total[k], free = a.free[k];
    const b = h('span', { class: 'bar' }, (() => { const i = h('i', { class: 'u-res' }); i.style.width = `${total ? (100 * used) / total : 0}%`; return i; })());
    return h('td', { class: 'res ' + k, 'data-used': used, 'data-free': free, 'data-total': total },
      `${fmt(used)} of ${fmt(total)}${unit}`, b, h('span', { class: 'muted' }, `${fmt(free)}${unit} free`));
  };
  refresh = async () => {
    const [info, leader, agents, reps] = await Promise.all([api('GET', '/v2/info'), api('GET', '/v2/leader'),
      // The master not answering is the agents table's problem only.
      api('GET', '/flotilla/v1/agents').catch(e => ({ error: e })),
      api('GET', '/flotilla/v1/replicas').catch(e => ({ error: e }))]);
    const fws = agents.frameworks || [];
    const mc = info.marathon_config || {};
    const list = agents.agents || [];
    main.replaceChildren(h('h1', {}, 'Cluster'), h('div', { class: 'cards' },
      h('div', { class: 'card' }, h('b', {}, 'Leader'), h('span', { id: 'leader' }, leader.leader)),
      h('div', { class: 'card' }, h('b', {}, 'This replica'), info.elected ? 'leading' : 'standby (requests forwarded to the leader)'),
      h('div', { class: 'card' }, h('b', {}, 'Framework'), `${info.name || 'flotilla'} ${info.version || ''}`, h('br'), info.frameworkId || ''),
      h('div', { class: 'card' }, h('b', {}, 'Mesos master'), mc.master || '—', agents.master ? h('span', { class: 'muted' }, ` (leading: ${agents.master})`) : null)),
      h('h2', {}, `Agents (${list.length})`),
      agents.error ? errorBox(agents.error) :
        h('table', { id: 'agents' },
          h('thead', {}, h('tr', {}, ['Agent', 'CPUs', 'Memory', 'Disk', 'Ports'].map((c, i) => h('th', { class: i > 2 ? 'hide-sm' : null }, c)))),
          h('tbody', {}, list.map(a => h('tr', { 'data-agent': a.id, class: a.active ? null : 'muted' },
            h('td', {}, a.hostname, h('br'), h('span', { class: 'muted' }, a.id, a.active ? '' : ' (inactive)')),
            cell(a, 'cpus', ''), cell(a, 'mem', ' MiB'),
            (() => { const c = cell(a, 'disk', ' MiB'); c.classList.add('hide-sm'); return c; })(),
            (() => { const c = cell(a, 'ports', ''); c.classList.add('hide-sm'); c.title = `offered ${a.ports || 'none'}, used ${a.usedPorts || 'none'}`; return c; })())))),
      agents.source ? h('p', { class: 'muted' }, `From the leading Mesos master's ${agents.source}; used is what tasks and executors hold.`) : null,
      h('h2', {}, `Frameworks (${fws.length})`),
      agents.error ? null : agents.frameworksError ? errorBox(new Error(agents.frameworksError)) :
        h('table', { id: 'frameworks' },
          h('thead', {}, h('tr', {}, ['Framework', 'Role', 'State', 'Tasks'].map(c => h('th', {}, c)))),
          h('tbody', {}, fws.map(f => h('tr', { 'data-framework': f.id, class: f.active ? null : 'muted' },
            h('td', {}, f.name, h('br'), h('span', { class: 'muted' }, f.id)), h('td', {}, f.role || '*'),
            h('td', { class: 'state' }, f.active ? (f.connected ? 'active' : 'active, disconnected') : 'inactive'),
            h('td', {}, `${f.tasks}` + (f.unreachableTasks ? `, ${f.unreachableTasks} unreachable` : '')))))),
      h('h2', {}, 'Replicas'),
      reps.error ? errorBox(reps.error) :
        h('ul', { id: 'replicas' }, (reps.replicas || []).map(r => h('li', {}, r.address, r.leader ? h('span', { class: 'muted' }, ' (leader)') : null))));
    main.dataset.ready = 'cluster';
  };
  await refresh();
}

// ---- a pod: its instances and their containers (GET ::status), scale,
// delete, its definition. Live like the other pages.
async function podPage(id) {
  const path = '/v2/pods' + id;
  const msg = h('p', { id: 'action-msg', role: 'status', class: 'muted' });
  const act = async (what, method, url, body) => {
    try { await api(method, url, body); msg.textContent = `${what}: accepted`; dirty = true; } catch (e) { msg.replaceChildren(errorBox(e)); }
  };
  const draw = async () => {
    const st = await api('GET', path + '::status');
    const spec = st.spec || {};
    const stable = st.instances.filter(i => i.status === 'STABLE').length;
    const scale = h('input', { type: 'number', min: 0, value: (spec.scaling || {}).instances || 0, 'aria-label': 'Instances', id: 'pod-scale' });
    const rows = [];
    for (const inst of st.instances) {
      inst.containers.forEach((c, k) => {
        const healthy = (c.conditions || []).find(x => x.name === 'healthy');
        rows.push(h('tr', {},
          h('td', {}, k === 0 ? inst.id : ''), h('td', {}, k === 0 ? inst.status : ''), h('td', {}, k === 0 ? inst.agentHostname || '' : ''),
          h('td', {}, c.name), h('td', {}, c.status), h('td', {}, healthy ? healthy.value : '–'),
          h('td', {}, (c.endpoints || []).map(e => `${e.name}:${e.allocatedHostPort || '–'}`).join(', '))));
      });
    }
    main.replaceChildren(
      h('h1', {}, id, ' ', h('span', { class: 'tag' }, 'pod')),
      h('p', { id: 'pod-status' }, `${st.status} · ${stable} stable of ${(spec.scaling || {}).instances || 0}`, st.message ? ` · ${st.message}` : ''),
      h('div', { class: 'toolbar' }, scale,
        h('button', { onclick: () => { const body = JSON.parse(JSON.stringify(spec)); delete body.version; body.scaling = { ...(body.scaling || {}), instances: Number(scale.value) }; act('Scale', 'PUT', path, body); } }, 'Scale'),
        h('button', { onclick: () => act('Delete', 'DELETE', path) }, 'Delete')),
      msg,
      h('h2', {}, 'Instances'),
      h('table', { id: 'pod-instances' }, h('thead', {}, h('tr', {}, ['Instance', 'Status', 'Agent', 'Container', 'State', 'Healthy', 'Endpoints'].map(x => h('th', {}, x)))), h('tbody', {}, rows)),
      h('h2', {}, 'Definition'), h('pre', { id: 'pod-spec' }, JSON.stringify(spec, null, 2)));
    main.dataset.ready = '1';
  };
  refresh = draw;
  await draw();
}

// ---- routing by hash: #/, #/app/<id>, #/pod/<id>, #/edit/<id>, #/new, #/cluster.
let leave = null;
async function route() {
  if (leave) { leave(); leave = null; }
  refresh = null;
  delete main.dataset.ready;
  const hash = decodeURIComponent(location.hash.slice(1) || '/');
  for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', hash === '/' ? a.dataset.nav === 'apps' : hash.startsWith('/' + a.dataset.nav));
  try {
    if (hash.startsWith('/app/')) leave = await appPage(hash.slice(4));
    else if (hash.startsWith('/pod/')) await podPage(hash.slice(4));
    else if (hash.startsWith('/edit/')) await editPage(hash.slice(5));
    else if (hash === '/new') await editPage(null);
    else if (hash === '/cluster') await clusterPage();
    else await appsPage();
  } catch (e) { showFatal(e); }
  main.focus({ preventScroll: true });
}

document.addEventListener('keydown', e => {
  if (e.key === '/' && !/INPUT|TEXTAREA|SELECT/.test(document.activeElement.tagName)) {
    const f = main.querySelector('input[type=search]');
    if (f) { e.preventDefault(); f.focus(); }
  }
});
window.addEventListener('hashchange', route);
api('GET', '/v2/info').then(i => { if (i && i.name) framework = i.name; }).catch(() => {}).finally(route);
connectEvents();
