// SPDX-License-Identifier: MIT
// Shared by the SDK tests: the official Cloudflare SDK pointed at the stack
// that tests/integration/stack.py started (it exports PCAPD_SDK_* variables
// and NODE_EXTRA_CA_CERTS for its self-signed certificate), traffic from the
// agents' namespaces, and pcap checks with tshark.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import Cloudflare from 'cloudflare';

import { WAIT_MS, env } from '../integration/stack.mjs';

export const PCAP_MAGICS = ['d4c3b2a1', 'a1b2c3d4', '4d3cb2a1', 'a1b23c4d'];

export { WAIT_MS, env, links, sendTraffic, tsharkCount } from '../integration/stack.mjs';

// A client for the stack: https or http, baseURL with or without /client/v4.
export function client({ https = false, prefix = true, token, apiKey, apiEmail, maxRetries = 0 } = {}) {
  const baseURL = env(https ? 'PCAPD_SDK_HTTPS_URL' : 'PCAPD_SDK_HTTP_URL') + (prefix ? '/client/v4' : '');
  const opts = { baseURL, maxRetries, timeout: 30000 };
  if (apiKey) {
    opts.apiKey = apiKey;
    opts.apiEmail = apiEmail;
  } else {
    opts.apiToken = token ?? env('PCAPD_SDK_TOKEN');
  }
  return new Cloudflare(opts);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Waits are for conditions, never for time: WAIT_MS (../integration/stack.mjs)
// only bounds how long a broken run takes to fail (PCAPD_TEST_WAIT seconds, as
// in the pytest suite).

// Polls fn() until it returns something truthy and returns it; throws with
// what() (the last state) after timeoutMs.
export async function until(fn, what, timeoutMs = WAIT_MS, intervalMs = 50) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`not within ${timeoutMs} ms: ${what()}`);
    await sleep(intervalMs);
  }
}

export function bucketDir(uri) {
  assert.ok(uri.startsWith('file://'), uri);
  return uri.slice('file://'.length);
}

// A new bucket under the stack's bucket root, proved with the token the
// controller wrote into it; returns the Ownership object.
export async function validatedBucket(cf, accountId) {
  const uri = `file://${env('PCAPD_SDK_BUCKET_ROOT')}/sdk-${randomBytes(6).toString('hex')}`;
  const own = await cf.magicTransit.pcaps.ownership.create({ account_id: accountId, destination_conf: uri });
  const token = fs.readFileSync(path.join(bucketDir(uri), own.filename), 'utf8').trim();
  const v = await cf.magicTransit.pcaps.ownership.validate({
    account_id: accountId,
    destination_conf: uri,
    ownership_challenge: token,
  });
  assert.equal(v.status, 'success');
  return v;
}

export async function waitStatus(cf, accountId, id, want = ['success', 'failed'], timeoutMs = WAIT_MS) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await cf.magicTransit.pcaps.get(id, { account_id: accountId });
    if (want.includes(last.status)) return last;
    if (Date.now() > end) throw new Error(`capture ${id} not ${want.join('/')} in ${timeoutMs} ms: ${JSON.stringify(last)}`);
    await sleep(50);
  }
}

// Until n agents' shares are running (pcapd's "agents" extension of the
// PCAP object): their sockets are open, traffic sent now is captured.
export async function waitRunning(cf, accountId, id, n = 1, timeoutMs = WAIT_MS) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await cf.magicTransit.pcaps.get(id, { account_id: accountId });
    const running = (last.agents ?? []).filter((a) => a.status === 'running').length;
    if (running >= n) return last;
    if (['success', 'failed'].includes(last.status) || Date.now() > end) {
      throw new Error(`capture ${id}: not ${n} agents running: ${JSON.stringify(last)}`);
    }
    await sleep(30);
  }
}

// Until the capture's packets_captured (the agents' reports) reaches n, so
// that a stop sent next cannot overtake packets already sent.
export async function waitCaptured(cf, accountId, id, n) {
  let last;
  return until(async () => {
    last = await cf.magicTransit.pcaps.get(id, { account_id: accountId });
    return (last.packets_captured ?? 0) >= n ? last : null;
  }, () => `capture ${id}: ${n} packets captured: ${JSON.stringify(last)}`);
}

// pcapd's extension GET …/pcaps/agents: {name: packets in its history}.
export async function historyPackets(baseURL, token, accountId) {
  let r;
  try {
    r = await fetch(`${baseURL}/accounts/${accountId}/pcaps/agents`, {
      headers: { authorization: `Bearer ${token}` },
    });
  } catch (e) {
    throw new Error(`GET …/pcaps/agents: ${e.message}: ${e.cause?.code ?? ''} ${e.cause?.message ?? ''}`);
  }
  assert.equal(r.status, 200);
  const out = {};
  for (const a of (await r.json()).result) out[a.name] = a.history?.packets ?? 0;
  return out;
}

// Each agent's newest packet in its history that a query can see (ms since
// the epoch; 0 for none). A history writes its blocks in order, so once a
// packet sent after time T shows here, every packet before T does too.
export async function historyNewest(baseURL, token, accountId) {
  const r = await fetch(`${baseURL}/accounts/${accountId}/pcaps/agents`, {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(r.status, 200);
  const out = {};
  for (const a of (await r.json()).result) out[a.name] = Date.parse(a.history?.newest ?? '') || 0;
  return out;
}

export function assertPcap(buf) {
  const b = Buffer.from(buf);
  assert.ok(b.length >= 24, `pcap too short: ${b.length} bytes`);
  assert.ok(PCAP_MAGICS.includes(b.subarray(0, 4).toString('hex')), `not a pcap: ${b.subarray(0, 4).toString('hex')}`);
  return b;
}

export function outFile(name) {
  return path.join(env('PCAPD_SDK_WORKDIR'), name);
}

// An SDK error of class cls with status and the first error code.
export async function rejectsWith(promise, cls, status, code, field) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected ${cls.name}, the call succeeded`);
  assert.ok(err instanceof cls, `expected ${cls.name}, got ${err?.constructor?.name}: ${err?.message}`);
  assert.equal(err.status, status);
  assert.ok(Array.isArray(err.errors) && err.errors.length > 0, `no errors array: ${JSON.stringify(err.error)}`);
  assert.equal(err.errors[0].code, code, JSON.stringify(err.errors));
  if (field) assert.ok(err.errors[0].message.startsWith(field), `message does not name ${field}: ${err.errors[0].message}`);
  // Cloudflare's error items: where the error table is (pcapd's README).
  assert.ok(err.errors[0].documentation_url?.endsWith('#api-errors'), JSON.stringify(err.errors[0]));
  assert.equal(err.headers.get('x-should-retry'), 'false');
  return err;
}

export { Cloudflare };
