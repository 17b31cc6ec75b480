// Reads the apps list off the page's main thread, as a tree: GET
// /v2/groups with its groups and apps (app ids like /prod/shop/web sit in
// /prod/shop, in /prod). With 10,000 apps the answer is ~9 MiB of JSON;
// parsing it on the page held the main thread for hundreds of milliseconds
// every second under events, so keypresses and scrolling waited
// (bench/RESULTS.md, "UI and logs"). Here it is parsed and cut down to the
// fields a row shows, each group gets its apps' totals (so the page sums
// nothing when it redraws), and only that crosses to the page.
self.onmessage = async ev => {
  const seq = ev.data;
  try {
    const [res, pres] = await Promise.all([fetch('/v2/groups?embed=group.groups&embed=group.apps', { credentials: 'same-origin' }),
      fetch('/v2/pods/::status', { credentials: 'same-origin' })]);
    // Pods' rows count their instances from their status; without it
    // (an older server) they show none running.
    pods = new Map();
    if (pres.ok) for (const st of await pres.json()) pods.set(st.id, st);
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = { message: text }; }
    if (!res.ok) {
      self.postMessage({ seq, error: { status: res.status, message: (data && data.message) || res.statusText, details: (data && data.details) || [] } });
      return;
    }
    self.postMessage({ seq, root: node(data) });
  } catch (e) {
    self.postMessage({ seq, error: { message: `reading /v2/groups: ${e.message}` } });
  }
};

// node is a group cut down: its apps with a row's fields, its groups, and
// the totals of everything inside (instances, the health bar's four
// counts, CPU and memory of all instances, the number of apps).
let pods = new Map();

// podRow is a pod as a row: its instances counted from its status (a
// STABLE instance is running and healthy, STAGING staged, DEGRADED
// running but not healthy), its resources per instance with the
// executor's.
function podRow(p) {
  const st = pods.get(p.id) || { instances: [] };
  const n = s => st.instances.filter(i => i.status === s).length;
  const res = [...(p.containers || []).map(c => c.resources || {}), p.executorResources || {}];
  const sum = k => res.reduce((t, r) => t + (r[k] || 0), 0);
  const checked = (p.containers || []).some(c => c.healthCheck);
  const external = (p.containers || []).some(c => (c.endpoints || []).some(e => /(^|,)external(,|$)/.test((e.labels || {}).HAPROXY_GROUP || '')));
  return {
    id: p.id, pod: true, instances: (p.scaling || {}).instances || 0, cpus: Math.round(sum('cpus') * 1000) / 1000, mem: sum('mem'),
    tasksRunning: n('STABLE') + n('DEGRADED'), tasksHealthy: n('STABLE'), tasksUnhealthy: checked ? n('DEGRADED') : 0, tasksStaged: n('STAGING'),
    healthChecks: checked ? [{}] : [], exposure: { mode: external ? 'external' : 'internal' },
  };
}

function node(g) {
  const apps = (g.apps || []).map(a => ({
    id: a.id, instances: a.instances, cpus: a.cpus, mem: a.mem,
    tasksRunning: a.tasksRunning, tasksHealthy: a.tasksHealthy, tasksUnhealthy: a.tasksUnhealthy, tasksStaged: a.tasksStaged,
    // counts() on the page needs only whether the app has checks.
    healthChecks: a.healthChecks && a.healthChecks.length ? [{}] : [],
    exposure: a.exposure ? { mode: a.exposure.mode } : undefined,
  }));
  for (const p of g.pods || []) apps.push(podRow(p));
  const groups = (g.groups || []).map(node);
  const total = { apps: 0, instances: 0, healthy: 0, unhealthy: 0, staged: 0, waiting: 0, cpus: 0, mem: 0 };
  for (const a of apps) {
    const healthy = a.healthChecks.length ? a.tasksHealthy : a.tasksRunning;
    const unhealthy = a.tasksUnhealthy || 0, staged = a.tasksStaged || 0;
    total.apps++; total.instances += a.instances; total.healthy += healthy; total.unhealthy += unhealthy; total.staged += staged;
    total.waiting += Math.max(0, a.instances - healthy - unhealthy - staged);
    total.cpus += a.cpus * a.instances; total.mem += a.mem * a.instances;
  }
  for (const s of groups) for (const k of Object.keys(total)) total[k] += s.total[k];
  return { id: g.id, apps, groups, total };
}
