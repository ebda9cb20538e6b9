// SPDX-License-Identifier: MIT
// Shared by the Azure SDK tests: the official @azure/arm-network client,
// unmodified, pointed at the stack that tests/integration/stack.py started
// with --azure (it exports PCAPD_AZ_* variables and NODE_EXTRA_CA_CERTS for its
// self-signed certificate), a credential whose getToken returns a pcapd
// token, traffic from the agents' namespaces, and the capture files on the
// agents' disks checked with tshark.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

import { NetworkManagementClient } from '@azure/arm-network';

const execFileP = promisify(execFile);

export function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run through "python3 tests/integration/stack.py run --azure -- node --test ..."`);
  return v;
}

// Waits are for conditions, never for time: WAIT_MS only bounds how long a
// broken run takes to fail (PCAPD_TEST_WAIT seconds, as in the pytest suite).
export const WAIT_MS = 1000 * Number(process.env.PCAPD_TEST_WAIT || 60);
export const T = { timeout: 3 * WAIT_MS };
// Polls every 50 ms instead of the SDK's 2 s.
export const FAST = { updateIntervalInMs: 50 };

export const SUB = () => env('PCAPD_AZ_SUBSCRIPTION');
export const GROUP = 'rg1';
export const WATCHER = 'nw1';

// A TokenCredential that hands the SDK a pcapd token (it asks once per
// client, for https://management.azure.com/.default).
export function credential(token) {
  return {
    async getToken(scopes) {
      assert.deepEqual(scopes, ['https://management.azure.com/.default']);
      return { token, expiresOnTimestamp: Date.now() + 3600e3 };
    },
  };
}

// A client of the stack; endpoint defaults to https://127.0.0.1:PORT.
export function client({ token = env('PCAPD_AZ_TOKEN'), subscription = SUB(), endpoint } = {}) {
  return new NetworkManagementClient(credential(token), subscription, {
    endpoint: endpoint ?? env('PCAPD_AZ_ENDPOINT'),
  });
}

export function vms() {
  return env('PCAPD_AZ_VMS').split(',');
}

export function target(name, kind = 'virtualMachines', sub = SUB()) {
  return `/subscriptions/${sub}/resourceGroups/${GROUP}/providers/Microsoft.Compute/${kind}/${name}`;
}

// Where /var/captures/rel is on agent vm's disk.
export function localFile(vm, rel) {
  const roots = Object.fromEntries(env('PCAPD_AZ_LOCAL_ROOTS').split(',').map((s) => s.split(':')));
  return path.join(roots[vm], rel);
}

let seq = 0;
// A capture name of its own for each use.
export function unique(prefix) {
  seq += 1;
  return `${prefix}${process.pid % 10000}x${seq}`;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function until(fn, what, timeoutMs = WAIT_MS, intervalMs = 50) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`not within ${timeoutMs} ms: ${what()}`);
    await sleep(intervalMs);
  }
}

// The raw resource (pcapd's "pcapd" extension included, which the SDK drops).
export async function raw(name, token = env('PCAPD_AZ_TOKEN')) {
  const url = `${env('PCAPD_AZ_ENDPOINT')}/subscriptions/${SUB()}/resourceGroups/${GROUP}/providers/` +
    `Microsoft.Network/networkWatchers/${WATCHER}/packetCaptures/${name}?api-version=2026-01-01`;
  const r = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(r.status, 200, `GET ${name}: ${r.status}`);
  return r.json();
}

// Until n agents' shares run (their sockets are open: traffic counts).
export async function waitRunning(name, n = 1) {
  let last;
  return until(async () => {
    last = await raw(name);
    const agents = last.properties.pcapd.agents ?? [];
    return agents.filter((a) => a.status === 'running').length >= n ? last : null;
  }, () => `${name}: ${n} agents running: ${JSON.stringify(last)}`);
}

export async function waitPackets(name, n) {
  let last;
  return until(async () => {
    last = await raw(name);
    return last.properties.pcapd.packets >= n ? last : null;
  }, () => `${name}: ${n} packets: ${JSON.stringify(last)}`);
}

function links() {
  return Object.fromEntries(env('PCAPD_AZ_LINKS').split(',').map((s, i) => [vms()[i], s.split(':')]));
}

// n UDP frames from vm's namespace (192.0.2.1:30000 → 192.0.2.2:dport).
// Asynchronously, so that node's event loop (and the SDK's kept-alive
// connections) run meanwhile.
export async function sendTraffic(vm, n, dport) {
  const [ns, iface] = links()[vm];
  await execFileP('/usr/bin/python3', [env('PCAPD_AZ_SEND'), 'send', ns, iface, String(n), String(dport)], {
    timeout: WAIT_MS,
  });
}

// Packets in a capture file as tshark counts them; it must read cleanly and be pcap.
export function tsharkCount(file) {
  const head = fs.readFileSync(file).subarray(0, 4).toString('hex');
  assert.ok(['d4c3b2a1', 'a1b2c3d4'].includes(head), `${file} is not a pcap: ${head}`);
  const out = execFileSync('tshark', ['-n', '-r', file, '-T', 'fields', '-e', 'udp.dstport'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 30000,
  }).toString();
  return out.split('\n').filter((l) => l.trim()).map(Number);
}

// A PacketCapture for the SDK (its model is flat: the SDK nests it in
// "properties" on the wire).
export function classic(vm, file, extra = {}) {
  return { target: target(vm), storageLocation: { filePath: `/var/captures/${file}` }, ...extra };
}

// The SDK's error for a call: a RestError with statusCode and code; with
// onResponse, also the ARM body as pcapd sent it (the target is only there
// for the long-running operations).
export async function armError(call, status, code) {
  let err;
  try {
    await call;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected ${status} ${code}: the call succeeded`);
  assert.equal(err.name, 'RestError', `${err.name}: ${err.message}`);
  assert.equal(err.statusCode, status, err.message);
  assert.equal(err.code, code, err.message);
  return err;
}

// Options that record every response the SDK gets (to see targets and count
// requests: no silent retries).
export function recorder(opts = {}) {
  const seen = [];
  return { seen, opts: { ...opts, onResponse: (r) => seen.push({ status: r.status, body: r.parsedBody }) } };
}

// The SDK's model objects without its undefined members (they are not on
// the wire), for deepEqual.
export function plain(v) {
  return JSON.parse(JSON.stringify(v));
}

// Deletes the capture when the test ends, however it ends (a delete stops a
// running capture), so that one failure does not leave captures that hold
// the account's limit for the tests after it.
export function cleanup(t, pc, name, watcher = WATCHER) {
  t.after(async () => {
    try {
      await pc.beginDeleteAndWait(GROUP, watcher, name, FAST);
    } catch {
      // already gone, or the controller is: the test has said why
    }
  });
}

export { NetworkManagementClient };
