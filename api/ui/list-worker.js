// Reads GET /v2/apps for the apps list off the page's main thread. With
// 10,000 apps the answer is ~9 MiB of JSON; parsing it on the page held the
// main thread for hundreds of milliseconds every second under events, so
// keypresses and scrolling waited (bench/RESULTS.md, "UI and logs"). Here
// it is parsed and cut down to the fields a row shows, and only those cross
// to the page.
self.onmessage = async ev => {
  const seq = ev.data;
  try {
    const res = await fetch('/v2/apps', { credentials: 'same-origin' });
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = { message: text }; }
    if (!res.ok) {
      self.postMessage({ seq, error: { status: res.status, message: (data && data.message) || res.statusText, details: (data && data.details) || [] } });
      return;
    }
    const apps = (data.apps || []).map(a => ({
      id: a.id, instances: a.instances, cpus: a.cpus, mem: a.mem,
      tasksRunning: a.tasksRunning, tasksHealthy: a.tasksHealthy, tasksUnhealthy: a.tasksUnhealthy, tasksStaged: a.tasksStaged,
      // counts() on the page needs only whether the app has checks.
      healthChecks: a.healthChecks && a.healthChecks.length ? [{}] : [],
      exposure: a.exposure ? { mode: a.exposure.mode } : undefined,
    }));
    self.postMessage({ seq, apps });
  } catch (e) {
    self.postMessage({ seq, error: { message: `reading /v2/apps: ${e.message}` } });
  }
};
