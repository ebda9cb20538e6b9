// SPDX-License-Identifier: MIT
// Continuous captures through the SDK: rotating files on the agent, each
// published whole while the session runs; a ring keeps the newest fileCount,
// continuousCapture false keeps them all.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import test from 'node:test';

import {
  FAST, GROUP, T, WATCHER, cleanup, client, localFile, plain, sendTraffic, target, tsharkCount, unique, until, vms,
  waitPackets,
} from './common.mjs';

// stack.py's frames are 203 bytes on the wire (219-byte records): three to a file.
const FILE_SIZE = 24 + 3 * 219 + 100;

function files(dir, stem) {
  return fs.readdirSync(dir).filter((f) => f.startsWith(`${stem}_`) && f.endsWith('.cap'))
    .sort((a, b) => Number(a.split('_')[1].split('.')[0]) - Number(b.split('_')[1].split('.')[0]));
}

for (const ring of [true, false]) {
  test(`continuousCapture ${ring}: rotating files ${ring ? 'in a ring of 2' : 'all kept'}`, T, async (t) => {
    const pc = client().packetCaptures;
    const vm = vms()[0];
    const stem = unique(ring ? 'ring' : 'keep');
    cleanup(t, pc, stem);
    const r = await pc.beginCreateAndWait(GROUP, WATCHER, stem, {
      target: target(vm),
      storageLocation: { localPath: `/var/captures/cont/${stem}.cap` },
      filters: [{ protocol: 'UDP', remotePort: '7300' }],
      continuousCapture: ring,
      captureSettings: { fileCount: 2, fileSizeInBytes: FILE_SIZE, sessionTimeLimitInSeconds: 3600 },
    }, FAST);
    assert.equal(r.continuousCapture, ring);
    assert.deepEqual(plain(r.captureSettings), { fileCount: 2, fileSizeInBytes: FILE_SIZE, sessionTimeLimitInSeconds: 3600 });
    assert.deepEqual(plain(r.storageLocation), { localPath: `/var/captures/cont/${stem}.cap` });
    const dir = path.dirname(localFile(vm, `cont/${stem}.cap`));

    await sendTraffic(vm, 12, 7300);
    // While the session runs, finished files are there to read, whole.
    const first = await until(() => {
      const f = fs.existsSync(dir) ? files(dir, stem) : [];
      return f.length >= 2 ? f : null;
    }, () => `${stem}: two files published`);
    for (const f of first) assert.equal(tsharkCount(path.join(dir, f)).length, 3);
    await sendTraffic(vm, 8, 7300);
    await waitPackets(stem, 20);
    await pc.beginStopAndWait(GROUP, WATCHER, stem, FAST);

    const all = files(dir, stem);
    const counts = all.map((f) => tsharkCount(path.join(dir, f)).length);
    for (const f of all) assert.ok(fs.statSync(path.join(dir, f)).size <= FILE_SIZE, f);
    assert.deepEqual(all.at(-1), `${stem}_7.cap`); // 20 frames, 3 a file
    if (ring) {
      assert.deepEqual(all, [`${stem}_6.cap`, `${stem}_7.cap`]);
      assert.deepEqual(counts, [3, 2]);
    } else {
      assert.equal(all.length, 7);
      assert.equal(counts.reduce((a, b) => a + b, 0), 20);
    }
    assert.ok(!fs.readdirSync(dir).some((f) => f.endsWith('.part')));
    const st = await pc.beginGetStatusAndWait(GROUP, WATCHER, stem, FAST);
    assert.equal(st.packetCaptureStatus, 'Stopped');
    await pc.beginDeleteAndWait(GROUP, WATCHER, stem, FAST);
  });
}
