// SPDX-License-Identifier: MIT
// A capture into a blob (storageLocation.storagePath) through the official
// SDK: the controller holds the storage account's key (--azure-storage, the
// stack's Azurite standing in for Azure Storage), the agent uploads, and the
// blob is read back with @azure/storage-blob (tests/stores' pinned copy) and
// checked with tshark. A ring (continuous capture) into blobs: each file is
// a blob, the ring's oldest deleted.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';

import {
  FAST, GROUP, T, WATCHER, cleanup, client, env, plain, sendTraffic, target, tsharkCount, unique, until, vms,
  waitPackets,
} from './common.mjs';

const require = createRequire(new URL('../stores/package.json', import.meta.url));
const { BlobServiceClient, StorageSharedKeyCredential } = require('@azure/storage-blob');

function storage() {
  return new BlobServiceClient(env('PCAPD_AZ_BLOB_ENDPOINT'),
    new StorageSharedKeyCredential(env('PCAPD_AZ_BLOB_ACCOUNT'), env('PCAPD_AZ_BLOB_KEY')));
}

// A capture on the first VM into a blob dir/<name>.cap of a new container,
// created with the SDK and these properties.
async function createIntoBlob(t, prefix, dir, port, more = {}) {
  const pc = client().packetCaptures;
  const vm = vms()[0];
  const name = unique(prefix);
  cleanup(t, pc, name);
  const container = storage().getContainerClient(`sdk-${name.toLowerCase()}`);
  await container.create();
  const storagePath = `https://${env('PCAPD_AZ_BLOB_ACCOUNT')}.blob.core.windows.net/${container.containerName}/` +
    `${dir}/${name}.cap`;
  const r = await pc.beginCreateAndWait(GROUP, WATCHER, name, {
    target: target(vm), storageLocation: { storagePath }, filters: [{ protocol: 'UDP', remotePort: `${port}` }],
    ...more,
  }, FAST);
  return { pc, vm, name, container, storagePath, r };
}

// Until the session is no longer Running (its blobs are written): its status.
async function stopped(pc, name) {
  await pc.beginStopAndWait(GROUP, WATCHER, name, FAST);
  return until(async () => {
    const s = await pc.beginGetStatusAndWait(GROUP, WATCHER, name, FAST);
    return s.packetCaptureStatus !== 'Running' ? s : null;
  }, () => `${name} stopped`);
}

test('a capture into a blob: beginCreateAndWait with storagePath, the blob read back', T, async (t) => {
  const { pc, vm, name, container, storagePath, r } = await createIntoBlob(t, 'blob', 'captures', 7200);
  assert.equal(r.provisioningState, 'Succeeded');
  assert.deepEqual(plain(r.storageLocation), { storagePath });
  assert.deepEqual(plain((await pc.get(GROUP, WATCHER, name)).storageLocation), { storagePath });

  await sendTraffic(vm, 5, 7200);
  await sendTraffic(vm, 2, 7201);
  await waitPackets(name, 5);
  // Stopped once the blob is written (Running while it uploads).
  const st = await stopped(pc, name);
  assert.equal(st.packetCaptureStatus, 'Stopped');
  assert.equal(st.stopReason, 'StoppedByUser');
  assert.deepEqual(st.packetCaptureError, []);

  const names = [];
  for await (const b of container.listBlobsFlat()) names.push(b.name);
  assert.deepEqual(names, [`captures/${name}.cap`]);
  const data = await container.getBlobClient(`captures/${name}.cap`).downloadToBuffer();
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pcapd-blob-')), `${name}.cap`);
  fs.writeFileSync(file, data);
  t.after(() => fs.rmSync(path.dirname(file), { recursive: true, force: true }));
  assert.deepEqual(tsharkCount(file), [7200, 7200, 7200, 7200, 7200]);
});

// stack.py's frames are 203 bytes on the wire (219-byte records): three to a file.
const FILE_SIZE = 24 + 3 * 219 + 100;

test('a ring into blobs: continuousCapture true, storagePath, the newest fileCount files as blobs', T, async (t) => {
  const { pc, vm, name, container, storagePath, r } = await createIntoBlob(t, 'ringblob', 'rings', 7202, {
    continuousCapture: true, captureSettings: { fileCount: 2, fileSizeInBytes: FILE_SIZE },
  });
  assert.equal(r.continuousCapture, true);
  assert.deepEqual(plain(r.storageLocation), { storagePath });

  await sendTraffic(vm, 7, 7202); // files 1 and 2 finished, the 3rd open
  await waitPackets(name, 7);
  const st = await stopped(pc, name);
  assert.equal(st.packetCaptureStatus, 'Stopped');
  assert.deepEqual(st.packetCaptureError, []);

  // File N is the blob <name>_N.cap; the ring's first one was deleted.
  const names = [];
  for await (const b of container.listBlobsFlat()) names.push(b.name);
  assert.deepEqual(names.sort(), [`rings/${name}_2.cap`, `rings/${name}_3.cap`]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pcapd-ring-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const counts = [];
  for (const n of names.sort()) {
    const file = path.join(dir, path.basename(n));
    fs.writeFileSync(file, await container.getBlobClient(n).downloadToBuffer());
    counts.push(tsharkCount(file));
  }
  assert.deepEqual(counts, [[7202, 7202, 7202], [7202]]);
});
