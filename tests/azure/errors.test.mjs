// SPDX-License-Identifier: MIT
// How pcapd's errors reach Azure SDK users: a RestError with ARM's statusCode,
// code and message (the target as ARM's body carries it, seen through
// onResponse), one request each (no silent retries: every deliberate error is
// a 4xx without Retry-After), nothing created; and a create whose agents fail
// as a failed long-running operation.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import test from 'node:test';

import {
  FAST, GROUP, T, WATCHER, armError, classic, cleanup, client, env, localFile, recorder, target, unique, vms,
} from './common.mjs';

async function names(pc = client().packetCaptures) {
  const out = [];
  for await (const c of pc.list(GROUP, WATCHER)) out.push(c.name);
  return out.sort();
}

// A create that must fail with status/code/target after exactly one request.
async function createRefused(body, status, code, armTarget, pc = client().packetCaptures) {
  const before = await names();
  const { seen, opts } = recorder(FAST);
  const e = await armError(pc.beginCreateAndWait(GROUP, WATCHER, unique('bad'), body, opts), status, code);
  assert.equal(seen.length, 1, `requests: ${JSON.stringify(seen)}`);
  if (armTarget !== undefined) assert.equal(seen[0].body.error.target, armTarget, JSON.stringify(seen[0].body));
  assert.deepEqual(await names(), before);
  return e;
}

const vm = () => vms()[0];

test('400 InvalidRequestFormat: every class of bad property, named in the target', T, async () => {
  await createRefused(classic(vm(), 'x.cap', { timeLimitInSeconds: 18001 }), 400, 'InvalidRequestFormat',
    'properties.timeLimitInSeconds');
  await createRefused(classic(vm(), 'x.cap', { totalBytesPerSession: 2 ** 32 }), 400, 'InvalidRequestFormat',
    'properties.totalBytesPerSession');
  await createRefused(classic(vm(), 'x.cap', { bytesToCapturePerPacket: -1 }), 400, 'InvalidRequestFormat',
    'properties.bytesToCapturePerPacket');
  await createRefused(classic(vm(), 'x.cap', { targetType: 'AzureVMSS' }), 400, 'InvalidRequestFormat',
    'properties.targetType');
  await createRefused(classic(vm(), 'x.cap', { filters: [{ protocol: 'ICMP' }] }), 400, 'InvalidRequestFormat',
    'properties.filters[0].protocol');
  await createRefused(classic(vm(), 'x.cap', { filters: [{ localPort: '80-70000' }] }), 400, 'InvalidRequestFormat',
    'properties.filters[0].localPort');
  await createRefused(classic(vm(), 'x.cap', { filters: [{ remoteIPAddress: '10.0.0.1-fe80::1' }] }), 400,
    'InvalidRequestFormat', 'properties.filters[0].remoteIPAddress');
  await createRefused({ target: target(vm()), storageLocation: {} }, 400, 'InvalidRequestFormat',
    'properties.storageLocation');
  await createRefused({ target: target(vm()), storageLocation: { filePath: 'C:\\Captures\\x.cap' } }, 400,
    'InvalidRequestFormat', 'properties.storageLocation.filePath');
  await createRefused({ target: target(vm()), storageLocation: { localPath: '/var/captures/x.cap' } }, 400,
    'InvalidRequestFormat', 'properties.storageLocation.localPath');
  await createRefused({ target: 'vm1', storageLocation: { filePath: '/var/captures/x.cap' } }, 400,
    'InvalidRequestFormat', 'properties.target');
  await createRefused({
    target: target(vm()), storageLocation: { localPath: '/var/captures/r.cap' }, continuousCapture: true,
    captureSettings: { fileCount: 10001 },
  }, 400, 'InvalidRequestFormat', 'properties.captureSettings.fileCount');
  await createRefused({
    target: target(vm()), storageLocation: { localPath: '/var/captures/r.cap' }, continuousCapture: true,
    captureSettings: { sessionTimeLimitInSeconds: 604801 },
  }, 400, 'InvalidRequestFormat', 'properties.captureSettings.sessionTimeLimitInSeconds');
});

test('400: a blob output names the storage account this controller cannot write to', T, async () => {
  const e = await createRefused({
    target: target(vm()), storageLocation: { storagePath: 'https://acct7.blob.core.windows.net/logs/x.cap' },
  }, 400, 'InvalidRequestFormat', 'properties.storageLocation.storagePath');
  assert.match(e.message, /acct7/);
});

test('400 AzureNetworkWatcherExtensionNotInstalled: a VM without an agent, named', T, async () => {
  const e = await createRefused(classic('nosuchvm', 'x.cap'), 400, 'AzureNetworkWatcherExtensionNotInstalled',
    'properties.target');
  assert.match(e.message, /'nosuchvm'/);
  await createRefused({
    target: target(env('PCAPD_AZ_SCALE_SET'), 'virtualMachineScaleSets'), scope: { include: ['vm9'] },
    storageLocation: { filePath: '/var/captures/x.cap' },
  }, 400, 'AzureNetworkWatcherExtensionNotInstalled', 'properties.target');
});

test('401: a token pcapd does not know (every operation)', T, async () => {
  const pc = client({ token: 'pcapd_this_is_not_a_token_at_all_00000000000' }).packetCaptures;
  await armError(pc.get(GROUP, WATCHER, 'x'), 401, 'InvalidAuthenticationToken');
  await armError((async () => { for await (const c of pc.list(GROUP, WATCHER)) void c; })(), 401,
    'InvalidAuthenticationToken');
  await armError(pc.beginCreateAndWait(GROUP, WATCHER, 'x', classic(vm(), 'x.cap'), FAST), 401,
    'InvalidAuthenticationToken');
  await armError(pc.beginGetStatusAndWait(GROUP, WATCHER, 'x', FAST), 401, 'InvalidAuthenticationToken');
  await armError(pc.beginStopAndWait(GROUP, WATCHER, 'x', FAST), 401, 'InvalidAuthenticationToken');
  await armError(pc.beginDeleteAndWait(GROUP, WATCHER, 'x', FAST), 401, 'InvalidAuthenticationToken');
});

test('403 AuthorizationFailed: another subscription\'s token, a read token writing, an agent token', T, async () => {
  const other = client({ token: env('PCAPD_AZ_OTHER_TOKEN') }).packetCaptures;
  await armError(other.get(GROUP, WATCHER, 'x'), 403, 'AuthorizationFailed');
  await createRefused(classic(vm(), 'x.cap'), 403, 'AuthorizationFailed', undefined, other);
  const read = client({ token: env('PCAPD_AZ_READ_TOKEN') }).packetCaptures;
  const e = await createRefused(classic(vm(), 'x.cap'), 403, 'AuthorizationFailed', undefined, read);
  assert.match(e.message, /scope read/);
  await armError(read.beginStopAndWait(GROUP, WATCHER, 'x', FAST), 403, 'AuthorizationFailed');
  await armError(read.beginDeleteAndWait(GROUP, WATCHER, 'x', FAST), 403, 'AuthorizationFailed');
  // reading is allowed
  assert.ok(Array.isArray(await names(read)));
  const agentTok = client({ token: env('PCAPD_AZ_AGENT_TOKEN') }).packetCaptures;
  await armError(agentTok.get(GROUP, WATCHER, 'x'), 403, 'AuthorizationFailed');
});

test('404 PacketCaptureNotFound: get, status and stop of a missing capture (delete succeeds)', T, async () => {
  const pc = client().packetCaptures;
  const { seen, opts } = recorder(FAST);
  const e = await armError(pc.get(GROUP, WATCHER, 'missing'), 404, 'PacketCaptureNotFound');
  assert.equal(e.details.error.target, 'packetCaptureName');
  await armError(pc.beginGetStatusAndWait(GROUP, WATCHER, 'missing', opts), 404, 'PacketCaptureNotFound');
  await armError(pc.beginStopAndWait(GROUP, WATCHER, 'missing', FAST), 404, 'PacketCaptureNotFound');
  assert.equal(seen.length, 1);
  assert.equal(await pc.beginDeleteAndWait(GROUP, WATCHER, 'missing', FAST), undefined);
});

test('409 PacketCaptureAlreadyExists: the name with other properties; the same PUT again is fine', T, async (t) => {
  const pc = client().packetCaptures;
  const name = unique('dup');
  cleanup(t, pc, name);
  const body = classic(vms()[1], `${name}.cap`);
  const first = await pc.beginCreateAndWait(GROUP, WATCHER, name, body, FAST);
  const again = await pc.beginCreateAndWait(GROUP, WATCHER, name, body, FAST);
  assert.equal(again.id, first.id);
  await createRefused(classic(vms()[1], `${name}-other.cap`), 409, 'PacketCaptureAlreadyExists', 'packetCaptureName',
    { beginCreateAndWait: (g, w, n, b, o) => pc.beginCreateAndWait(g, w, name, b, o) });
});

test('429 TooManyRequests past the per-account limit, reported at once (no Retry-After, no retries)', T, async (t) => {
  const pc = client({ token: env('PCAPD_AZ_LIMITED_TOKEN'), subscription: env('PCAPD_AZ_LIMITED_SUBSCRIPTION') })
    .packetCaptures;
  const sub = env('PCAPD_AZ_LIMITED_SUBSCRIPTION');
  for (let i = 0; i < Number(env('PCAPD_AZ_LIMIT')); i++) {
    const name = unique('lim');
    cleanup(t, pc, name);
    await pc.beginCreateAndWait(GROUP, WATCHER, name, {
      target: target(vms()[1], 'virtualMachines', sub), storageLocation: { filePath: `/var/captures/${name}.cap` },
    }, FAST);
  }
  const { seen, opts } = recorder(FAST);
  const name = unique('lim');
  await armError(pc.beginCreateAndWait(GROUP, WATCHER, name, {
    target: target(vms()[1], 'virtualMachines', sub), storageLocation: { filePath: `/var/captures/${name}.cap` },
  }, opts), 429, 'TooManyRequests');
  assert.equal(seen.length, 1);
});

test('a create whose agent fails is a failed operation (LocalFileFailed): the SDK throws', T, async (t) => {
  const pc = client().packetCaptures;
  const name = unique('taken');
  cleanup(t, pc, name);
  fs.mkdirSync(localFile(vm(), ''), { recursive: true });
  fs.writeFileSync(localFile(vm(), `${name}.cap`), 'keep me');
  await assert.rejects(pc.beginCreateAndWait(GROUP, WATCHER, name, classic(vm(), `${name}.cap`), FAST),
    (e) => /The long-running operation has failed\. LocalFileFailed\. .*exists already/.test(e.message));
  const r = await pc.get(GROUP, WATCHER, name);
  assert.equal(r.provisioningState, 'Failed');
  const st = await pc.beginGetStatusAndWait(GROUP, WATCHER, name, FAST);
  assert.equal(st.packetCaptureStatus, 'Error');
  assert.deepEqual(st.packetCaptureError, ['LocalFileFailed']);
  assert.equal(fs.readFileSync(localFile(vm(), `${name}.cap`), 'utf8'), 'keep me');
});
