// SPDX-License-Identifier: MIT
// The web dashboard in a real browser: Debian's Chromium, driven headless by
// playwright-core, against a real controller and two real agents that
// tests/integration/stack.py started (agents sdk-a1 and sdk-a2 in colo
// "lab", every packet recorded into their history), with real traffic sent
// from the agents' namespaces. Used as a person would: sign in, add and
// validate a bucket, start captures through the wizard, watch them, stop
// one, download one and read it with tshark, look at the agents; and as an
// attacker would: HTML in what the page shows. Chromium starts once for the
// whole file; each scenario has its own browser context (its own
// sessionStorage). Every wait is for a condition; none is a fixed sleep.
// Screenshots of every page go to the build directory (web-artifacts/).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { caseField, caseForm, loadBounds, table, webModule } from '../cases.mjs';
import { WAIT_MS, apiCall, artifactsDir, env, launch, sendTraffic, shot, tsharkCount, until } from '../lib.mjs';

const HTTP = env('PCAPD_SDK_HTTP_URL');
const HTTPS = env('PCAPD_SDK_HTTPS_URL');
const ACCOUNT = env('PCAPD_SDK_ACCOUNT_ID');
const TOKEN = env('PCAPD_SDK_TOKEN');
const READ_TOKEN = env('PCAPD_SDK_READ_TOKEN');
const OTHER_TOKEN = env('PCAPD_SDK_OTHER_TOKEN');
const ROOT = env('PCAPD_SDK_BUCKET_ROOT');
const [AGENT1, AGENT2] = env('PCAPD_SDK_AGENTS').split(',');
const PCAPS = `/client/v4/accounts/${ACCOUNT}/pcaps`;
// A test's own bound: several waits of WAIT_MS each at most.
const LONG = { timeout: 6 * WAIT_MS };

let browser;
const problems = []; // console errors, CSP refusals, uncaught exceptions
const state = {}; // what one scenario leaves for the next: bucket, captures

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

// A new context (a new tab's sessionStorage) with a page that reports its
// problems.
async function newPage({ viewport = { width: 1280, height: 800 }, base = HTTP, ...opts } = {}) {
  const context = await browser.newContext({ viewport, baseURL: base, ...opts });
  // Every wait is for a condition; WAIT_MS (PCAPD_TEST_WAIT) only bounds
  // how long a broken run takes to fail.
  context.setDefaultTimeout(WAIT_MS);
  context.setDefaultNavigationTimeout(WAIT_MS);
  const page = await context.newPage();
  page.on('console', (m) => {
    // Chromium logs every answer >= 400 as an error: those the tests provoke
    // are checked where they happen.
    if (/^Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) return;
    if (m.type() === 'error' || /Content Security Policy|Refused to/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  return { context, page };
}

async function signIn(page, token = TOKEN) {
  await page.goto('/');
  await page.getByLabel('Account ID').fill(ACCOUNT);
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Captures', level: 1 }).waitFor();
}

// The error line of a form control (by the API's field name), once shown.
async function fieldError(page, name) {
  const el = page.locator(`[data-error-for="${name}"]`);
  await el.waitFor({ state: 'visible' });
  return el.textContent();
}

async function noHorizontalScroll(page) {
  return page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1);
}

async function apiCapture(id) {
  const r = await apiCall('GET', `${PCAPS}/${id}`, TOKEN);
  assert.equal(r.status, 200, r.text);
  return r.json.result;
}

// Starts a capture through the wizard on the signed-in page and returns its
// id (from the capture page it lands on).
async function startCapture(page, { type, fields = {}, filter = {}, checks = [], bucket }) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Start a capture' }).click();
  await page.getByRole('heading', { name: 'Start a capture', level: 1 }).waitFor();
  await page.getByLabel(type === 'full' ? /^Full/ : /^Sample/).check();
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('heading', { name: 'Limits and target' }).waitFor();
  for (const [label, value] of Object.entries(fields)) await page.getByLabel(label, { exact: true }).fill(value);
  if (bucket) {
    const select = page.getByLabel('Bucket', { exact: true });
    await until(async () => (await select.locator('option').allTextContents()).includes(bucket), `bucket ${bucket} offered`);
    await select.selectOption(bucket);
  }
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('heading', { name: 'Filter (optional)' }).waitFor();
  for (const [label, value] of Object.entries(filter)) await page.getByLabel(label, { exact: true }).fill(value);
  for (const label of checks) await page.getByLabel(label, { exact: true }).check();
  await page.getByRole('button', { name: 'Start', exact: true }).click();
  await page.waitForURL(/#\/captures\/[0-9a-f]{32}$/);
  return page.url().split('/').pop();
}

async function captureStatus(page, want) {
  await page.locator('#capture-status', { hasText: new RegExp(`^${want}$`) }).waitFor({ timeout: 2 * WAIT_MS });
}

async function shareStatus(page, agent, want) {
  await page.locator(`tr[data-agent="${agent}"] .status`, { hasText: new RegExp(`^${want}$`) }).waitFor();
}

// ---------------------------------------------------------------------------

test('the controller serves the dashboard at / on HTTP and HTTPS with a strict policy', async () => {
  for (const base of [HTTP, HTTPS]) {
    const r = await fetch(`${base}/`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/html; charset=utf-8');
    const csp = r.headers.get('content-security-policy');
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe/);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(r.headers.get('x-frame-options'), 'DENY');
    const html = await r.text();
    assert.match(html, /<script type="module" src="\/js\/app.js"><\/script>/);
    const js = await fetch(`${base}/js/bounds.js`);
    assert.equal(js.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.match(await js.text(), /time_limit: Object.freeze\(\{ min: 1, max: 300 \}\)/);
  }
  // The API keeps its paths: /client/v4/ is not the dashboard.
  const api = await fetch(`${HTTP}/client/v4/`);
  assert.equal(api.status, 404);
  assert.equal((await api.json()).errors[0].code, 7003);
});

test('the first load is under 150 KB, all from the controller', async () => {
  const { context, page } = await newPage();
  await page.goto('/');
  await page.getByRole('heading', { name: 'Sign in to pcapd' }).waitFor();
  await page.waitForLoadState('networkidle');
  // What crossed the wire for the page and everything it loaded (a fresh
  // context: nothing cached).
  const loads = await page.evaluate(() => performance.getEntriesByType('navigation')
    .concat(performance.getEntriesByType('resource'))
    .map((e) => ({ url: e.name, transfer: e.transferSize, body: e.encodedBodySize })));
  const bytes = loads.reduce((n, e) => n + e.transfer, 0);
  assert.ok(loads.length >= 10, JSON.stringify(loads));
  for (const e of loads) assert.equal(new URL(e.url).origin, HTTP, e.url);
  assert.ok(bytes > 20000 && bytes < 150 * 1024, `first load: ${bytes} bytes`);
  fs.writeFileSync(path.join(artifactsDir(), 'first-load.txt'),
    `${bytes} bytes in ${loads.length} responses\n${loads.map((e) => `${e.transfer}\t${e.url}`).join('\n')}\n`);
  await shot(page, 'signin');
  await context.close();
});

test('a refused token or account gets the API message next to the field', async () => {
  const { context, page } = await newPage();
  await page.goto('/');
  await page.getByLabel('Account ID').fill(ACCOUNT);
  await page.getByLabel('API token').fill('pcapd_not-a-real-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  const bad = await apiCall('GET', `/client/v4/accounts/${ACCOUNT}/tokens/verify`, 'pcapd_not-a-real-token');
  assert.equal(bad.status, 401);
  assert.equal(await fieldError(page, 'token'), bad.json.errors[0].message);

  await page.getByLabel('API token').fill(OTHER_TOKEN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  const other = await apiCall('GET', `/client/v4/accounts/${ACCOUNT}/tokens/verify`, OTHER_TOKEN);
  assert.equal(other.status, 403);
  assert.equal(await fieldError(page, 'account'), other.json.errors[0].message);

  await page.getByLabel('Account ID').fill('not-hex');
  await page.getByRole('button', { name: 'Sign in' }).click();
  assert.equal(await fieldError(page, 'account'), 'account: must be 32 hexadecimal digits');
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  await shot(page, 'signin-refused');
  await context.close();
});

test('sign in and move around with the keyboard alone; the token stays in sessionStorage', async () => {
  const { context, page } = await newPage();
  await page.goto('/');
  // The account field has the focus; Tab to the token, Enter signs in.
  await page.getByLabel('Account ID').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.name), 'account');
  await page.keyboard.type(ACCOUNT);
  await page.keyboard.press('Tab');
  await page.keyboard.type(TOKEN);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Captures', level: 1 }).waitFor();
  // Tab until the Agents link has the focus, then Enter.
  await until(async () => {
    await page.keyboard.press('Tab');
    return page.evaluate(() => document.activeElement?.textContent === 'Agents');
  }, 'the Agents link to take the focus', 20000);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Agents', level: 1 }).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement?.tagName), 'H1');

  const stored = await page.evaluate(() => JSON.parse(sessionStorage.getItem('pcapd.session')));
  assert.equal(stored.token, TOKEN);
  assert.equal(stored.account, ACCOUNT);
  assert.equal(stored.scope, 'write');
  assert.deepEqual(await context.cookies(), []);
  assert.equal(await page.evaluate(() => localStorage.length), 0);
  assert.ok(!page.url().includes(TOKEN));
  await context.close();
});

test('add a file:// bucket and validate it with the token from its challenge file', LONG, async () => {
  const { context, page } = await newPage();
  await signIn(page);
  await page.getByRole('link', { name: 'Buckets' }).click();
  await page.getByRole('heading', { name: 'Buckets', level: 1 }).waitFor();
  const uri = `file://${ROOT}/web-${randomBytes(4).toString('hex')}`;
  await page.getByLabel('Bucket URI').fill(uri);
  await page.getByRole('button', { name: 'Add bucket' }).click();
  // The page says where the challenge file was written: read it from there.
  const added = page.locator('.notice.info', { hasText: 'challenge file' });
  await added.waitFor();
  const text = await added.textContent();
  const where = /to (\/\S+\/ownership-challenge-[0-9a-f]{32}\.txt):/.exec(text);
  assert.ok(where, text);
  assert.ok(where[1].startsWith(uri.slice('file://'.length)), where[1]);
  const row = page.locator('tr', { hasText: uri });
  await row.locator('.status', { hasText: 'Pending validation' }).waitFor();

  // A wrong token first: the API's message, and still pending.
  const input = row.getByLabel('Token from the challenge file');
  await input.fill('0000');
  await row.getByRole('button', { name: 'Validate' }).click();
  const wrong = await apiCall('POST', `${PCAPS}/ownership/validate`, TOKEN, { destination_conf: uri, ownership_challenge: '0000' });
  assert.equal(wrong.status, 400);
  await row.locator('.notice.error', { hasText: wrong.json.errors[0].message }).waitFor();

  await input.fill(fs.readFileSync(where[1], 'utf8'));
  await row.getByRole('button', { name: 'Validate' }).click();
  await page.locator('tr', { hasText: uri }).locator('.status', { hasText: 'Validated' }).waitFor();
  const list = await apiCall('GET', `${PCAPS}/ownership`, TOKEN);
  assert.equal(list.json.result.find((b) => b.destination_conf === uri).status, 'success');
  state.bucket = uri;
  assert.ok(await noHorizontalScroll(page));
  await shot(page, 'buckets');
  await context.close();
});

test('the form checks agree with the controller on every case of the shared table', async () => {
  const V = await webModule('js/validate.js');
  const BOUNDS = await loadBounds();
  for (const c of table.cases) {
    const now = Date.now();
    const { form, message } = caseForm(c, now);
    const { body, errors } = V.checkCapture(form, BOUNDS, now);
    assert.equal(errors[caseField(c)], message);
    const r = await apiCall('POST', PCAPS, TOKEN, body);
    assert.equal(r.status, 400, `${JSON.stringify(c.set)}: ${r.text}`);
    assert.equal(r.json.errors[0].message, message, JSON.stringify(c.set));
  }
  // Nothing was created.
  const list = await apiCall('GET', PCAPS, TOKEN);
  assert.equal(list.json.result.length, 0);
});

test('a bad field shows the API message as the user types; the controller has the last word', LONG, async () => {
  const { context, page } = await newPage();
  await signIn(page);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Start a capture' }).click();
  await page.getByRole('button', { name: 'Next' }).click();
  const time = page.getByLabel('Time limit (seconds)');
  await time.fill('301');
  const typed = await fieldError(page, 'time_limit');
  const api = await apiCall('POST', PCAPS, TOKEN, { type: 'full', system: 'magic-transit', time_limit: 301, colo_name: 'lab', destination_conf: state.bucket });
  assert.equal(api.status, 400);
  assert.equal(typed, api.json.errors[0].message);
  assert.equal(await time.getAttribute('aria-invalid'), 'true');
  await shot(page, 'start-bad-field');
  // Next refuses to move on and puts the focus on the field.
  await page.getByRole('button', { name: 'Next' }).click();
  assert.equal(await page.evaluate(() => document.activeElement?.name), 'time_limit');
  await time.fill('30');
  await page.locator('[data-error-for="time_limit"]').waitFor({ state: 'hidden' });

  // What only the controller can check (libpcap's syntax): its answer, next
  // to the expression.
  await page.getByLabel('Colo or agent').fill('lab');
  await page.getByLabel('Bucket', { exact: true }).selectOption(state.bucket);
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByLabel('pcap-filter expression').fill('port nonsense');
  await page.getByRole('button', { name: 'Start', exact: true }).click();
  const server = await apiCall('POST', PCAPS, TOKEN, { type: 'full', system: 'magic-transit', time_limit: 30, colo_name: 'lab', destination_conf: state.bucket, filter_v1: { bpf: 'port nonsense' } });
  assert.equal(server.status, 400);
  assert.match(server.json.errors[0].message, /^filter_v1\.bpf: /);
  assert.equal(await fieldError(page, 'filter_v1.bpf'), server.json.errors[0].message);
  // And a colo with no online agent: the controller's 1007, on the colo field.
  await page.getByLabel('pcap-filter expression').fill('');
  await page.getByRole('button', { name: 'Back' }).click();
  await page.getByLabel('Colo or agent').fill('nowhere');
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('button', { name: 'Start', exact: true }).click();
  const colo = await fieldError(page, 'colo_name');
  assert.match(colo, /^colo_name: /);
  assert.match(colo, new RegExp(AGENT1));
  await shot(page, 'start-server-errors');
  assert.equal((await apiCall('GET', PCAPS, TOKEN)).json.result.length, 0);
  await context.close();
});

test('a full capture through the wizard captures real traffic, succeeds, and downloads a file tshark reads', LONG, async () => {
  const { context, page } = await newPage();
  await signIn(page);
  const id = await startCapture(page, {
    type: 'full',
    fields: { 'Time limit (seconds)': '120', 'Packet limit': '20', 'Colo or agent': AGENT1 },
    bucket: state.bucket,
    filter: { 'Destination ports': '5555', Protocol: 'udp' },
  });
  await shareStatus(page, AGENT1, 'running');
  await page.locator('progress').first().waitFor();
  await shot(page, 'capture-running');
  await sendTraffic(0, 20, 5555);
  await sendTraffic(0, 5, 5558); // not matching
  await captureStatus(page, 'Success');
  await page.locator('dd', { hasText: /^20$/ }).first().waitFor();
  await shareStatus(page, AGENT1, 'done');
  await page.getByText('packet limit reached').waitFor();
  const c = await apiCapture(id);
  assert.equal(c.packets_captured, 20);
  assert.equal(c.stop_reason, 'packets');
  await shot(page, 'capture-success');

  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download' }).click()]);
  assert.equal(download.suggestedFilename(), `pcap_${id}.pcap`);
  const file = path.join(artifactsDir(), `full-${id}.pcap`);
  await download.saveAs(file);
  assert.equal(tsharkCount(file), 20);
  assert.equal(tsharkCount(file, 'udp.dstport == 5555'), 20);
  await page.getByText(/^Downloaded pcap_/).waitFor();
  state.full = id;
  await context.close();
});

test('the captures list refreshes by itself, newest first, with filters', LONG, async () => {
  const { context, page } = await newPage();
  await signIn(page);
  const rows = page.locator('table.data tbody tr');
  await until(async () => (await rows.count()) === 1, 'the full capture in the list');
  // A capture made elsewhere (the API) appears, runs and ends without a reload.
  const made = await apiCall('POST', PCAPS, TOKEN, { type: 'full', system: 'magic-transit', time_limit: 1, colo_name: AGENT2, destination_conf: state.bucket, filter_v1: { destination_port: 5999 } });
  assert.equal(made.status, 200, made.text);
  const id = made.json.result.id;
  const row = page.locator(`tr[data-id="${id}"]`);
  await row.waitFor();
  assert.equal(await rows.first().getAttribute('data-id'), id, 'newest first');
  // No packet matched: it fails, as Cloudflare's do, and says why.
  await page.locator(`tr[data-id="${id}"][data-status="failed"]`).waitFor({ timeout: 2 * WAIT_MS });
  const failed = await apiCapture(id);
  await row.locator('.err-text', { hasText: failed.error_message }).waitFor();
  assert.equal(await row.locator('td[data-label="Target"]').textContent(), AGENT2);
  assert.equal(await row.locator('td[data-label="Filter"]').textContent(), 'dport 5999');
  assert.equal(await page.locator(`tr[data-id="${state.full}"] td[data-label="Packets"]`).textContent(), '20');
  assert.equal(await page.locator(`tr[data-id="${state.full}"] td[data-label="Filter"]`).textContent(), 'dport 5555, proto udp');
  await shot(page, 'captures');

  await page.getByLabel('Status').selectOption('failed');
  await until(async () => (await rows.count()) === 1 && (await rows.first().getAttribute('data-id')) === id, 'only the failed capture');
  await page.getByLabel('Status').selectOption('');
  await page.getByLabel('Type').selectOption('simple');
  await page.getByText('No capture matches these filters.').waitFor();
  await page.getByLabel('Type').selectOption('full');
  await until(async () => (await rows.count()) === 2, 'both full captures');
  assert.ok(await noHorizontalScroll(page));
  await context.close();
});

test('a long capture on two agents runs with a chart and is stopped from its page', LONG, async () => {
  const { context, page } = await newPage();
  await signIn(page);
  const id = await startCapture(page, {
    type: 'full',
    fields: { 'Time limit (seconds)': '300', 'Colo or agent': 'lab' },
    bucket: state.bucket,
    filter: { 'Destination ports': '5556' },
    checks: ['Also inside tunnels'], // plain traffic matches its outer headers all the same
  });
  await shareStatus(page, AGENT1, 'running');
  await shareStatus(page, AGENT2, 'running');
  await sendTraffic(0, 5, 5556);
  await sendTraffic(1, 5, 5556);
  state.sampleSentBefore = Date.now();
  await sendTraffic(0, 1, 5557); // the history's fence (see the sample test)
  await sendTraffic(1, 1, 5557);
  // The agents report their counts; the chart draws what the page sampled.
  await page.locator('dd', { hasText: /^10$/ }).first().waitFor();
  await page.locator('svg.chart path.line').waitFor();
  await page.getByRole('img', { name: /^Packets over time: 10 packets/ }).waitFor();
  assert.equal(await page.locator('#capture-status').textContent(), 'Running');
  await shot(page, 'capture-chart');
  await page.getByRole('button', { name: 'Stop' }).click();
  await captureStatus(page, 'Success');
  await page.getByText('stopped by a user').waitFor();
  await page.getByRole('button', { name: 'Stop' }).waitFor({ state: 'hidden' });
  const c = await apiCapture(id);
  assert.deepEqual(c.filter_v1, { destination_port: '5556', inner: true });
  await page.getByText('dport 5556, also inside tunnels').waitFor();
  assert.equal(c.stop_reason, 'user');
  assert.equal(c.packets_captured, 10);
  assert.ok(c.stop_requested);
  await shot(page, 'capture-stopped');
  state.long = id;
  await context.close();
});

test('a sample from the agents\' history through the wizard', LONG, async () => {
  // The history shows a packet once its block is written (within about a
  // second): wait until both agents' histories reach past the fence packets
  // sent after the 5556 traffic of the previous test.
  await until(async () => {
    const r = await apiCall('GET', `${PCAPS}/agents`, TOKEN);
    return r.json.result.every((a) => Date.parse(a.history?.newest ?? '') >= state.sampleSentBefore);
  }, 'the agents\' histories to hold the traffic');
  const { context, page } = await newPage();
  await signIn(page);
  const id = await startCapture(page, {
    type: 'simple',
    fields: { 'Time limit (seconds)': '300', 'Packet limit': '100' },
    filter: { 'Destination ports': '5556', Protocol: '17' },
  });
  await captureStatus(page, 'Success');
  await shareStatus(page, AGENT1, 'done');
  await shareStatus(page, AGENT2, 'done');
  await page.locator('dd', { hasText: /^10$/ }).first().waitFor();
  const c = await apiCapture(id);
  assert.equal(c.type, 'simple');
  assert.deepEqual(c.agents.map((a) => a.packets).sort(), [5, 5]);
  await shot(page, 'capture-sample');
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download' }).click()]);
  const file = path.join(artifactsDir(), `sample-${id}.pcap`);
  await download.saveAs(file);
  assert.equal(tsharkCount(file, 'udp.dstport == 5556'), 10);
  await context.close();
});

test('an Azure session is in the captures list with its own fields and is stopped from its page', LONG, async () => {
  const a = ACCOUNT;
  const sub = `${a.slice(0, 8)}-${a.slice(8, 12)}-${a.slice(12, 16)}-${a.slice(16, 20)}-${a.slice(20)}`;
  const arm = `/subscriptions/${sub}/resourceGroups/rg-web/providers/Microsoft.Network/networkWatchers/nw-web/` +
    'packetCaptures/ring-web?api-version=2026-01-01';
  const body = {
    properties: {
      target: `/subscriptions/${sub}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/${AGENT1}`,
      storageLocation: { localPath: '/var/captures/web/ring.cap' },
      continuousCapture: true,
      captureSettings: { fileCount: 3, fileSizeInBytes: 1048576, sessionTimeLimitInSeconds: 3600 },
      filters: [{ protocol: 'Any', localPort: '5558' }],
    },
  };
  // The account's one active full capture (the previous scenario's) may
  // still be ending: a 429 means "not yet".
  const put = await until(async () => {
    const r = await apiCall('PUT', arm, TOKEN, body);
    return r.status === 429 ? null : r;
  }, 'the Azure PUT past the active-capture limit');
  assert.equal(put.status, 201, put.text);
  const list = await apiCall('GET', `${PCAPS}?per_page=1000`, TOKEN);
  const made = list.json.result.find((c) => c.azure?.name === 'ring-web');
  assert.ok(made, list.text);

  const { context, page } = await newPage();
  await signIn(page);
  const row = page.locator(`tr[data-id="${made.id}"]`);
  await row.getByText('Azure: rg-web / nw-web / ring-web').waitFor();
  await row.locator('.filter', { hasText: /5558.*either direction/ }).waitFor();
  await row.getByRole('link', { name: `Capture ${made.id}` }).click();
  await page.locator('dd', { hasText: 'rg-web / nw-web / ring-web' }).waitFor();
  await page.locator('dd', { hasText: '/var/captures/web/ring.cap' }).waitFor();
  await page.locator('dd', { hasText: 'ring of 3 files of 1.0 MiB, for 1 h' }).waitFor();
  await shareStatus(page, AGENT1, 'running');
  await sendTraffic(0, 4, 5558);
  await page.locator('dd', { hasText: /^4$/ }).first().waitFor();
  await shot(page, 'capture-azure');
  await page.getByRole('button', { name: 'Stop' }).click();
  await captureStatus(page, 'Success');
  await page.getByText('stopped by a user').waitFor();
  await context.close();
});

test('the agents page shows every agent, its recorder and the span of its history', async () => {
  const { context, page } = await newPage();
  await signIn(page);
  await page.getByRole('link', { name: 'Agents' }).click();
  await page.getByText('2 of 2 agents online').waitFor();
  const api = (await apiCall('GET', `${PCAPS}/agents`, TOKEN)).json.result;
  for (const a of api) {
    const row = page.locator(`tr[data-agent="${a.name}"]`);
    await row.waitFor();
    assert.equal(await row.locator('td[data-label="State"]').textContent(), 'Online');
    assert.equal(await row.locator('td[data-label="Colo"]').textContent(), 'lab');
    assert.equal(await row.locator('td[data-label="Interfaces"]').textContent(), a.interfaces);
    assert.match(await row.locator('td[data-label="Recorder"]').textContent(), /^Recording 1 in 1$/);
    assert.match(await row.locator('td[data-label="History (oldest → newest)"]').textContent(),
      /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC → \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(.+; [\d,]+ packets, .+\)$/);
    assert.equal(await row.locator('td[data-label="Drops"]').textContent(), '0');
    assert.equal(await row.locator('td[data-label="Errors"]').textContent(), 'none');
    assert.match(await row.locator('td[data-label="Last seen"]').textContent(), /just now|s ago/);
  }
  assert.ok(await noHorizontalScroll(page));
  await shot(page, 'agents');
  await context.close();
});

test('HTML in what the API returns is shown as text', LONG, async () => {
  const { context, page } = await newPage();
  await signIn(page);
  await page.getByRole('link', { name: 'Buckets' }).click();
  await page.getByRole('heading', { name: 'Your buckets' }).waitFor();
  // A bucket whose path is markup (legal in a file name).
  const evil = `file://${ROOT}/<img src=x onerror=window.__pwned=1><script>window.__pwned=2<\\script>`;
  await page.getByLabel('Bucket URI').fill(evil);
  await page.getByRole('button', { name: 'Add bucket' }).click();
  const cell = page.locator('td[data-label="Bucket"] .uri', { hasText: '<img src=x' });
  await cell.waitFor();
  assert.equal(await cell.textContent(), evil);
  // An error message that echoes markup: a path outside the bucket root.
  const outside = 'file:///tmp/<svg onload=window.__pwned=3>';
  await page.getByLabel('Bucket URI').fill(outside);
  await page.getByRole('button', { name: 'Add bucket' }).click();
  const api = await apiCall('POST', `${PCAPS}/ownership`, TOKEN, { destination_conf: outside });
  assert.equal(api.status, 400);
  assert.ok(api.json.errors[0].message.includes('<svg onload'), api.text);
  assert.equal(await fieldError(page, 'destination_conf'), api.json.errors[0].message);
  await shot(page, 'html-injection');
  assert.equal(await page.locator('main img, main script, main svg[onload], main [onerror]').count(), 0);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  await context.close();
});

test('a read-only token sees no write button', LONG, async () => {
  const { context, page } = await newPage();
  await signIn(page, READ_TOKEN);
  await page.getByText('read-only').waitFor();
  const nav = page.getByRole('navigation', { name: 'Main' });
  assert.equal(await nav.getByRole('link', { name: 'Start a capture' }).count(), 0);
  await page.locator(`tr[data-id="${state.full}"]`).waitFor();
  assert.equal(await page.getByRole('link', { name: 'Start a capture' }).count(), 0);
  assert.equal(await page.getByRole('button', { name: 'Start' }).count(), 0);
  await shot(page, 'readonly-captures');

  await page.goto(`/#/captures/${state.long}`);
  await captureStatus(page, 'Success');
  await page.getByRole('button', { name: 'Download' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Stop' }).count(), 0);

  await page.goto('/#/start');
  await page.getByText('This token is read-only').waitFor();
  assert.equal(await page.getByRole('button', { name: /Start|Next/ }).count(), 0);

  await page.goto('/#/buckets');
  await page.locator('tr', { hasText: state.bucket }).waitFor();
  assert.equal(await page.getByRole('button', { name: /Add bucket|Remove|Validate/ }).count(), 0);
  await shot(page, 'readonly-buckets');
  await context.close();
});

test('a phone-sized window shows every page without sideways scrolling', LONG, async () => {
  const { context, page } = await newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await signIn(page);
  for (const [hash, heading, name] of [['#/captures', 'Captures', 'phone-captures'], [`#/captures/${state.full}`, null, 'phone-capture'],
    ['#/start', 'Start a capture', 'phone-start'], ['#/buckets', 'Buckets', 'phone-buckets'], ['#/agents', 'Agents', 'phone-agents']]) {
    await page.goto(`/${hash}`);
    if (heading) await page.getByRole('heading', { name: heading, level: 1 }).waitFor();
    else await captureStatus(page, 'Success');
    await page.waitForLoadState('networkidle');
    assert.ok(await noHorizontalScroll(page), `${hash} scrolls sideways`);
    await shot(page, name);
  }
  await context.close();
});

test('remove a bucket, then sign out: the session is gone', LONG, async () => {
  const { context, page } = await newPage({ base: HTTPS, ignoreHTTPSErrors: true });
  await signIn(page); // over HTTPS this time
  await page.getByRole('link', { name: 'Buckets' }).click();
  const row = page.locator('tr', { hasText: '<img src=x' });
  await row.getByRole('button', { name: 'Remove' }).click();
  await row.getByRole('button', { name: 'Confirm removal' }).click();
  await until(async () => (await page.locator('tr', { hasText: '<img src=x' }).count()) === 0, 'the bucket to go');
  const list = await apiCall('GET', `${PCAPS}/ownership`, TOKEN);
  assert.ok(!list.json.result.some((b) => b.destination_conf.includes('<img')));

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in to pcapd' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('pcapd.session')), null);
  await page.reload();
  await page.getByRole('heading', { name: 'Sign in to pcapd' }).waitFor();
  await page.goto('/#/agents');
  await page.getByRole('heading', { name: 'Sign in to pcapd' }).waitFor();
  await context.close();
});

test('no page logged an error or a refused resource', () => {
  assert.deepEqual(problems, []);
});
