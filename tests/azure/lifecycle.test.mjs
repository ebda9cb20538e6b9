// SPDX-License-Identifier: MIT
// A packet capture's whole life through the official SDK, as an Azure user
// writes it: beginCreateAndWait, get, list, beginGetStatusAndWait,
// beginStopAndWait, beginDeleteAndWait (and the newer awaitable pollers),
// with real traffic and the capture file on the agent read with tshark.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import test from 'node:test';

import {
  FAST, GROUP, T, WATCHER, armError, classic, cleanup, client, env, localFile, plain, raw, sendTraffic, target,
  tsharkCount, unique, until, vms, waitPackets, waitRunning,
} from './common.mjs';

test('classic capture: create, get, list, status, stop, delete', T, async (t) => {
  const pc = client().packetCaptures;
  const vm = vms()[0];
  const name = unique('pc');
  cleanup(t, pc, name);
  const file = `sdk/${name}.cap`;
  const r = await pc.beginCreateAndWait(GROUP, WATCHER, name,
    classic(vm, file, { filters: [{ protocol: 'UDP', remotePort: '7100' }] }), FAST);
  // The SDK's model is flat; the wire was nested.
  assert.equal(r.name, name);
  assert.equal(r.id, `/subscriptions/${env('PCAPD_AZ_SUBSCRIPTION')}/resourceGroups/${GROUP}/providers/` +
    `Microsoft.Network/networkWatchers/${WATCHER}/packetCaptures/${name}`);
  assert.match(r.etag, /^W\/"[0-9a-f-]{36}"$/);
  assert.equal(r.provisioningState, 'Succeeded');
  assert.equal(r.target, target(vm));
  assert.equal(r.targetType, 'AzureVM');
  assert.deepEqual(plain(r.storageLocation), { filePath: `/var/captures/${file}` });
  assert.deepEqual(plain(r.filters), [{ protocol: 'UDP', remotePort: '7100' }]);
  assert.equal(r.timeLimitInSeconds, 18000);
  assert.equal(r.totalBytesPerSession, 1073741824);
  assert.equal(r.bytesToCapturePerPacket, 0);

  // Created means capturing: traffic sent now is in the file.
  await sendTraffic(vm, 6, 7100);
  await sendTraffic(vm, 3, 7101);
  await waitPackets(name, 6);

  const got = await pc.get(GROUP, WATCHER, name);
  assert.deepEqual(plain({ ...got, etag: undefined }), plain({ ...r, etag: undefined }));
  const names = [];
  for await (const c of pc.list(GROUP, WATCHER)) names.push(c.name);
  assert.ok(names.includes(name), names.join(','));

  let st = await pc.beginGetStatusAndWait(GROUP, WATCHER, name, FAST);
  assert.equal(st.packetCaptureStatus, 'Running');
  assert.equal(st.name, name);
  assert.ok(st.captureStartTime instanceof Date && !Number.isNaN(st.captureStartTime.getTime()), st.captureStartTime);
  assert.deepEqual(st.packetCaptureError, []);

  assert.equal(await pc.beginStopAndWait(GROUP, WATCHER, name, FAST), undefined);
  st = await pc.beginGetStatusAndWait(GROUP, WATCHER, name, FAST);
  assert.equal(st.packetCaptureStatus, 'Stopped');
  assert.equal(st.stopReason, 'StoppedByUser');
  const ports = tsharkCount(localFile(vm, file));
  assert.deepEqual(ports, [7100, 7100, 7100, 7100, 7100, 7100]);
  assert.equal((await raw(name)).properties.pcapd.packets, 6);

  assert.equal(await pc.beginDeleteAndWait(GROUP, WATCHER, name, FAST), undefined);
  await armError(pc.get(GROUP, WATCHER, name), 404, 'PacketCaptureNotFound');
  assert.ok(fs.existsSync(localFile(vm, file)), 'delete leaves the file');
  // Deleting what is gone resolves at once.
  await pc.beginDeleteAndWait(GROUP, WATCHER, name, FAST);
});

test('the awaitable pollers (create, getStatus, stop, delete) of the modular client', T, async (t) => {
  const pc = client().packetCaptures;
  const vm = vms()[1];
  const name = unique('poll');
  cleanup(t, pc, name);
  const r = await pc.create(GROUP, WATCHER, name, classic(vm, `${name}.cap`, { timeLimitInSeconds: 600 }), FAST);
  assert.equal(r.provisioningState, 'Succeeded');
  assert.equal(r.timeLimitInSeconds, 600);
  const st = await pc.getStatus(GROUP, WATCHER, name, FAST);
  assert.equal(st.packetCaptureStatus, 'Running');
  await pc.stop(GROUP, WATCHER, name, FAST);
  await pc.delete(GROUP, WATCHER, name, FAST);
  await armError(pc.get(GROUP, WATCHER, name), 404, 'PacketCaptureNotFound');
});

test('a time limit ends the session: Stopped, TimeExceeded (no traffic needed)', T, async (t) => {
  const pc = client().packetCaptures;
  const vm = vms()[0];
  const name = unique('tl');
  cleanup(t, pc, name);
  await pc.beginCreateAndWait(GROUP, WATCHER, name, classic(vm, `${name}.cap`, {
    timeLimitInSeconds: 1, filters: [{ protocol: 'TCP', remotePort: '1' }],
  }), FAST);
  const st = await until(async () => {
    const s = await pc.beginGetStatusAndWait(GROUP, WATCHER, name, FAST);
    return s.packetCaptureStatus === 'Stopped' ? s : null;
  }, () => `${name} stopped`);
  assert.equal(st.stopReason, 'TimeExceeded');
  assert.deepEqual(tsharkCount(localFile(vm, `${name}.cap`)), []);
  await pc.beginDeleteAndWait(GROUP, WATCHER, name, FAST);
});

test('a scale set: the agents of its colo, narrowed by scope', T, async (t) => {
  const pc = client().packetCaptures;
  const [vm1, vm2] = vms();
  const name = unique('ss');
  cleanup(t, pc, name);
  const r = await pc.beginCreateAndWait(GROUP, WATCHER, name, {
    target: target(env('PCAPD_AZ_SCALE_SET'), 'virtualMachineScaleSets'),
    targetType: 'AzureVMSS',
    scope: { include: [vm2] },
    storageLocation: { filePath: `/var/captures/${name}.cap` },
    filters: [{ protocol: 'UDP', remotePort: '7200' }],
  }, FAST);
  assert.equal(r.targetType, 'AzureVMSS');
  assert.deepEqual(plain(r.scope), { include: [vm2], exclude: [] });
  const res = await waitRunning(name);
  assert.deepEqual(res.properties.pcapd.agents.map((a) => a.name), [vm2]);
  await sendTraffic(vm2, 4, 7200);
  await waitPackets(name, 4);
  await pc.beginStopAndWait(GROUP, WATCHER, name, FAST);
  assert.equal(tsharkCount(localFile(vm2, `${name}.cap`)).length, 4);
  assert.ok(!fs.existsSync(localFile(vm1, `${name}.cap`)), 'an excluded agent writes nothing');
  await pc.beginDeleteAndWait(GROUP, WATCHER, name, FAST);
});

test('list pages: more captures than a page, each once, nextLink followed', T, async (t) => {
  // Captures that fail at once (their file exists) cost the agent nothing.
  const vm = vms()[1];
  const watcher = unique('nwpage');
  fs.mkdirSync(localFile(vm, ''), { recursive: true });
  fs.writeFileSync(localFile(vm, 'taken-for-paging.cap'), 'x');
  const base = `${env('PCAPD_AZ_ENDPOINT')}/subscriptions/${env('PCAPD_AZ_SUBSCRIPTION')}/resourceGroups/${GROUP}/` +
    `providers/Microsoft.Network/networkWatchers/${watcher}/packetCaptures`;
  const want = [];
  const pc = client().packetCaptures;
  for (let i = 0; i < 105; i++) {
    const name = `p${i}`;
    const auth = { authorization: `Bearer ${env('PCAPD_AZ_TOKEN')}` };
    const r = await fetch(`${base}/${name}?api-version=2026-01-01`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ properties: classic(vm, 'taken-for-paging.cap') }),
    });
    assert.equal(r.status, 201, await r.text());
    want.push(name);
    cleanup(t, pc, name, watcher);
    // Until it failed: a pending capture counts against the account's limit.
    const op = r.headers.get('azure-asyncoperation');
    await until(async () => (await (await fetch(op, { headers: auth })).json()).status === 'Failed',
      () => `${name} failed`);
  }
  const got = [];
  let pages = 0;
  for await (const page of pc.list(GROUP, watcher).byPage()) {
    pages += 1;
    got.push(...page.map((c) => c.name));
  }
  assert.equal(pages, 2);
  assert.deepEqual(got.sort(), want.sort());
});

test('https://localhost works too: the certificate names it, operation URLs follow the Host', T, async (t) => {
  const pc = client({ endpoint: `https://localhost:${env('PCAPD_AZ_HTTPS_PORT')}` }).packetCaptures;
  const name = unique('lh');
  cleanup(t, pc, name);
  const seen = [];
  const onResponse = (r) => seen.push(r.headers.get('azure-asyncoperation') ?? r.headers.get('location'));
  await pc.beginCreateAndWait(GROUP, WATCHER, name, classic(vms()[0], `${name}.cap`), { ...FAST, onResponse });
  assert.ok(seen[0].startsWith(`https://localhost:${env('PCAPD_AZ_HTTPS_PORT')}/subscriptions/`), seen[0]);
  await pc.beginStopAndWait(GROUP, WATCHER, name, FAST);
  await pc.beginDeleteAndWait(GROUP, WATCHER, name, FAST);
});
