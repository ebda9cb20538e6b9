// SPDX-License-Identifier: MIT
// The browser half of bench/dashboard.py (which starts the stack, makes the
// captures and passes them in BENCH_CAPTURES): the Captures page in Debian's
// Chromium, timed with the marks the page sets (pcapd:captures:first-render,
// pcapd:captures:refresh and their ":took" and ":drawing" measures), RUNS
// cold loads per case, each followed by refreshes of an unchanged list and
// refreshes after one capture changed. Medians with min and max.
//
// The 1,000-row case and the static anchor go through a small proxy here on
// 127.0.0.1: it answers the list with all the captures (and serves the
// static table), and passes everything else to the controller unchanged
// (its files and headers). Real sockets on both sides, as for the page as
// served.
import fs from 'node:fs';
import http from 'node:http';

import { launch } from '../tests/web/lib.mjs';

const URL_BASE = process.env.PCAPD_SDK_HTTP_URL;
const ACCOUNT = process.env.PCAPD_SDK_ACCOUNT_ID;
const TOKEN = process.env.PCAPD_SDK_TOKEN;
const RUNS = Number(process.env.BENCH_RUNS ?? 7);
const CAPTURES = JSON.parse(fs.readFileSync(process.env.BENCH_CAPTURES, 'utf8'));
const REFRESHES = 4;

const stats = (xs) => {
  const v = [...xs].sort((a, b) => a - b);
  return { median: v[Math.floor(v.length / 2)], min: v[0], max: v[v.length - 1], n: v.length };
};
const fmt = (s) => `${s.median.toFixed(1)} ms (min ${s.min.toFixed(1)}, max ${s.max.toFixed(1)}, n=${s.n})`;

function envelope(list) {
  return JSON.stringify({ success: true, errors: [], messages: [], result: list,
    result_info: { page: 1, per_page: list.length, count: list.length, total_count: list.length } });
}

// The page's marks so far: {first, refreshes: [took ms]}.
async function marks(page) {
  return page.evaluate(() => ({
    first: performance.getEntriesByName('pcapd:captures:first-render')[0]?.startTime,
    firstTook: performance.getEntriesByName('pcapd:captures:first-render:took')[0]?.duration,
    firstDrawing: performance.getEntriesByName('pcapd:captures:first-render:drawing')[0]?.duration,
    refreshes: performance.getEntriesByName('pcapd:captures:refresh:took').map((e) => e.duration),
    drawings: performance.getEntriesByName('pcapd:captures:refresh:drawing').map((e) => e.duration),
  }));
}

async function waitRefreshes(page, n) {
  await page.waitForFunction((k) => performance.getEntriesByName('pcapd:captures:refresh:took').length >= k, n,
    { timeout: 120000, polling: 50 });
}

// A proxy in front of the controller: GET of the account's list gets
// state.list; /bench-static.html gets state.html; the rest is passed on.
function startProxy(state) {
  const target = new URL(URL_BASE);
  const listPath = `/client/v4/accounts/${ACCOUNT}/pcaps?`;
  const server = http.createServer((req, res) => {
    const own = req.url.startsWith(listPath) ? ['application/json', envelope(state.list)]
      : req.url === '/bench-static.html' ? ['text/html; charset=utf-8', state.html] : null;
    if (own) {
      res.writeHead(200, { 'Content-Type': own[0], 'Content-Length': Buffer.byteLength(own[1]), 'Cache-Control': 'no-store' });
      res.end(own[1]);
      return;
    }
    const up = http.request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, base: `http://127.0.0.1:${server.address().port}` })));
}

// One case: RUNS cold loads of base's Captures page; with state (the
// proxy's), one capture is then changed and one added. Returns the marks.
async function measure(browser, base, state) {
  const out = { nav: [], took: [], drawing: [], unchanged: [], unchangedDrawing: [], changed: [], changedDrawing: [], rows: 0 };
  for (let r = 0; r < RUNS; r++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await context.addInitScript(([token, account]) => {
      sessionStorage.setItem('pcapd.session', JSON.stringify({ token, account, scope: 'write' }));
    }, [TOKEN, ACCOUNT]);
    if (state) state.list = CAPTURES;
    const page = await context.newPage();
    await page.goto(`${base}/#/captures`);
    await page.waitForFunction(() => performance.getEntriesByName('pcapd:captures:first-render').length > 0, null, { timeout: 120000, polling: 50 });
    let m = await marks(page);
    out.nav.push(m.first);
    out.took.push(m.firstTook);
    out.drawing.push(m.firstDrawing);
    out.rows = await page.locator('table.data tbody tr').count();
    await waitRefreshes(page, REFRESHES);
    m = await marks(page);
    out.unchanged.push(...m.refreshes.slice(0, REFRESHES));
    out.unchangedDrawing.push(...m.drawings.slice(0, REFRESHES));
    if (state) {
      // One capture changed (the newest one's status) and one new at the top.
      state.list = [{ ...CAPTURES[1], id: 'f'.repeat(32), submitted: new Date().toISOString() },
        { ...CAPTURES[0], status: 'failed', error_message: 'changed' }, ...CAPTURES.slice(1)];
      await waitRefreshes(page, REFRESHES + 1);
      m = await marks(page);
      out.changed.push(m.refreshes[REFRESHES]);
      out.changedDrawing.push(m.drawings[REFRESHES]);
    }
    await context.close();
  }
  return out;
}

function staticTable(list) {
  const esc = (s) => String(s ?? '').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const rows = list.map((c) => `<tr><td><a href="#/captures/${esc(c.id)}">${esc(c.id.slice(0, 8))}…</a></td><td>${esc(c.type)}</td>` +
    `<td><span class="status">${esc(c.status)}</span> ${esc(c.error_message)}</td><td>${esc(c.colo_name ?? 'all agents')}</td>` +
    `<td>${esc(c.submitted)}</td><td>${esc(c.packets_captured ?? '—')}</td><td>${esc(c.kernel_drops)}</td>` +
    `<td>${esc(JSON.stringify(c.filter_v1))}</td></tr>`).join('');
  return `<!doctype html><html><head><meta charset="utf-8"><link rel="stylesheet" href="/app.css"></head><body><main>` +
    `<table class="data"><thead><tr><th>ID</th><th>Type</th><th>Status</th><th>Target</th><th>Submitted</th><th>Packets</th>` +
    `<th>Kernel drops</th><th>Filter</th></tr></thead><tbody>${rows}</tbody></table></main></body></html>`;
}

async function anchorStatic(browser, base) {
  const loads = [];
  for (let r = 0; r < RUNS; r++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    await page.goto(`${base}/bench-static.html`, { waitUntil: 'load' });
    // The whole table parsed into the DOM, its style sheet loaded: what the
    // page's first-render mark says of its own rows.
    loads.push(await page.evaluate(() => performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd));
    await context.close();
  }
  return loads;
}

async function apiFetch() {
  const times = [];
  let bytes = 0;
  for (let r = 0; r < RUNS * 3; r++) {
    const t0 = performance.now();
    const res = await fetch(`${URL_BASE}/client/v4/accounts/${ACCOUNT}/pcaps?page=1&per_page=50`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    bytes = (await res.text()).length;
    times.push(performance.now() - t0);
  }
  return { times, bytes };
}

const browser = await launch();
const state = { list: CAPTURES, html: staticTable(CAPTURES) };
const proxy = await startProxy(state);
try {
  const api = await apiFetch();
  console.log(`API list (newest 50 of ${CAPTURES.length}): ${api.bytes} bytes, fetch ${fmt(stats(api.times))}`);
  const show = (name, all, drawing) => console.log(`  ${name.padEnd(31)}${fmt(stats(all))}; drawing alone ${fmt(stats(drawing))}`);
  const real = await measure(browser, URL_BASE, null);
  console.log(`page as served by the controller (${real.rows} rows):`);
  console.log(`  navigation -> first render     ${fmt(stats(real.nav))}`);
  show('list request -> drawn (first)', real.took, real.drawing);
  show('refresh, unchanged list', real.unchanged, real.unchangedDrawing);
  const big = await measure(browser, proxy.base, state);
  console.log(`page given all ${CAPTURES.length} captures in one answer (${big.rows} rows, ${envelope(CAPTURES).length} bytes):`);
  console.log(`  navigation -> first render     ${fmt(stats(big.nav))}`);
  show('list request -> drawn (first)', big.took, big.drawing);
  show('refresh, unchanged list', big.unchanged, big.unchangedDrawing);
  show('refresh, one new + one changed', big.changed, big.changedDrawing);
  const anchor = await anchorStatic(browser, proxy.base);
  console.log(`anchor: static HTML table of the same ${CAPTURES.length} rows (${state.html.length} bytes, no script):`);
  console.log(`  navigation -> DOM built        ${fmt(stats(anchor))}`);
} finally {
  await browser.close();
  proxy.server.close();
}
