// SPDX-License-Identifier: MIT
// Shared by the browser suite and the dashboard benchmark: Debian's Chromium
// started by playwright-core (nothing downloaded), waiting for conditions,
// screenshots, calls to the API of the stack that tests/integration/stack.py
// started (its environment and traffic: ../integration/stack.mjs).
import fs from 'node:fs';
import path from 'node:path';

import { chromium } from 'playwright-core';

import { WAIT_MS, env } from '../integration/stack.mjs';
import { ROOT } from './cases.mjs';

export { WAIT_MS, env, sendTraffic, tsharkCount } from '../integration/stack.mjs';

// What Chromium needs as root on a machine without a display or an open
// network: no sandbox, no GPU, and nothing that reaches for the network on
// its own (background updates, sync, QUIC probes).
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-default-apps', '--disable-extensions', '--metrics-recording-only', '--mute-audio'];

export function launch() {
  return chromium.launch({
    executablePath: process.env.PCAPD_CHROMIUM ?? '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
    timeout: 2 * WAIT_MS,
  });
}

export function artifactsDir() {
  const dir = process.env.PCAPD_WEB_ARTIFACTS ??
    path.join(process.env.PCAPD_BUILD ?? path.join(ROOT, 'build'), 'web-artifacts');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export async function shot(page, name) {
  const file = path.join(artifactsDir(), `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

// Polls fn (every 100 ms) until it returns a truthy value, which is returned;
// throws naming what was awaited and the last value after timeoutMs (a bound
// on how long a broken run takes to fail, never a race: PCAPD_TEST_WAIT).
export async function until(fn, what, timeoutMs = WAIT_MS) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// One call to the controller's API, outside the browser: {status, body}.
export async function apiCall(method, pathname, token, body) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(`${env('PCAPD_SDK_HTTP_URL')}${pathname}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: r.status, json, text, headers: r.headers };
}
