// SPDX-License-Identifier: MIT
// The node side of stack.py: what a node test run by `stack.py run -- node
// --test …` reads of the deployment (PCAPD_SDK_* variables), traffic sent
// from the agents' namespaces (stack.py send), and pcap files counted by
// tshark. Shared by the SDK tests (tests/sdk) and the browser tests
// (tests/web).
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

// Waits are for conditions; this only bounds how long a broken run takes to
// fail (PCAPD_TEST_WAIT seconds, as in the pytest suite).
export const WAIT_MS = 1000 * Number(process.env.PCAPD_TEST_WAIT || 60);

export function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run through "python3 tests/integration/stack.py run -- node --test ..."`);
  return v;
}

// The agents' links as [{ns, iface}], in agent order.
export function links() {
  return env('PCAPD_SDK_LINKS').split(',').map((s) => {
    const [ns, iface] = s.split(':');
    return { ns, iface };
  });
}

// Sends n UDP frames to dport from link i's namespace (stack.py send).
// Asynchronously: a synchronous child would block the event loop for as long
// as it runs (seconds on a busy machine), and a kept-alive connection the
// controller closed meanwhile would then be reused before its close is seen.
export async function sendTraffic(i, n, dport) {
  const l = links()[i];
  await execFileP('/usr/bin/python3', [env('PCAPD_SDK_SEND'), 'send', l.ns, l.iface, String(n), String(dport)], {
    timeout: WAIT_MS,
  });
}

// Packets in a pcap file as tshark counts them (those a display filter
// keeps, if given); tshark must read it cleanly, in time order.
export function tsharkCount(file, displayFilter) {
  const args = ['-n', '-r', file, '-T', 'fields', '-e', 'frame.time_epoch'];
  if (displayFilter) args.push('-Y', displayFilter);
  const out = execFileSync('tshark', args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: WAIT_MS }).toString();
  const ts = out.split('\n').filter((l) => l.trim()).map(Number);
  for (let i = 1; i < ts.length; i++) assert.ok(ts[i] >= ts[i - 1], 'packets not in time order');
  return ts.length;
}
