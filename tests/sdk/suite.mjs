// SPDX-License-Identifier: MIT
// Every PCAPs endpoint through the official SDK, registered once per
// transport by http.test.mjs and https.test.mjs.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import test from 'node:test';

import {
  Cloudflare,
  assertPcap,
  WAIT_MS,
  bucketDir,
  client,
  env,
  historyNewest,
  historyPackets,
  outFile,
  rejectsWith,
  sendTraffic,
  tsharkCount,
  until,
  validatedBucket,
  waitCaptured,
  waitRunning,
  waitStatus,
} from './common.mjs';

const SUBMITTED = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
const ID = /^[0-9a-f]{32}$/;
const T = { timeout: 4 * WAIT_MS };

// label: for test names; https, prefix: the client; account, token, bucket:
// the account this suite works in (its own, so per-account limits hold).
export function pcapSuite({ label, https, prefix, account, token, bucket }) {
  const cf = () => client({ https, prefix, token });
  const P = () => cf().magicTransit.pcaps;
  const colo = env('PCAPD_SDK_COLO');
  const agents = env('PCAPD_SDK_AGENTS').split(',');
  let fullId;

  test(`${label}: ownership create, get, validate (token), delete`, T, async () => {
    const uri = `file://${env('PCAPD_SDK_BUCKET_ROOT')}/${label.replace(/\W/g, '')}-own`;
    const own = await P().ownership.create({ account_id: account, destination_conf: uri });
    assert.match(own.id, ID);
    assert.equal(own.status, 'pending');
    assert.equal(own.destination_conf, uri);
    assert.equal(own.filename, `ownership-challenge-${own.id}.txt`);
    assert.match(own.submitted, SUBMITTED);
    const file = path.join(bucketDir(uri), own.filename);
    assert.ok(fs.existsSync(file), `${file} missing`);
    const listed = [];
    for await (const o of P().ownership.get({ account_id: account })) listed.push(o);
    assert.equal(listed.find((o) => o.id === own.id)?.status, 'pending');
    assert.ok(listed.some((o) => o.destination_conf === bucket && o.status === 'success'));
    await rejectsWith(
      P().ownership.validate({ account_id: account, destination_conf: uri, ownership_challenge: 'not-it' }),
      Cloudflare.BadRequestError, 400, 1009, 'ownership_challenge');
    const token = fs.readFileSync(file, 'utf8').trim();
    const v = await P().ownership.validate({ account_id: account, destination_conf: uri, ownership_challenge: token });
    assert.equal(v.status, 'success');
    assert.equal(v.id, own.id);
    assert.match(v.validated, SUBMITTED);
    const del = await P().ownership.delete(own.id, { account_id: account });
    assert.ok(del === null || del === undefined || del === '', `delete returned ${JSON.stringify(del)}`);
    const after = (await P().ownership.get({ account_id: account })).result;
    assert.ok(!after.some((o) => o.id === own.id));
    await rejectsWith(P().ownership.delete(own.id, { account_id: account }), Cloudflare.NotFoundError, 404, 1003,
      'ownership_id');
  });

  test(`${label}: ownership validate with the filename is refused (it proves nothing)`, T, async () => {
    const uri = `file://${env('PCAPD_SDK_BUCKET_ROOT')}/${label.replace(/\W/g, '')}-fn`;
    const own = await P().ownership.create({ account_id: account, destination_conf: uri });
    await rejectsWith(P().ownership.validate({
      account_id: account, destination_conf: uri, ownership_challenge: own.filename,
    }), Cloudflare.BadRequestError, 400, 1009, 'ownership_challenge');
    await P().ownership.delete(own.id, { account_id: account });
  });

  test(`${label}: create a sample; every agent answers from its history; download it`, T, async () => {
    // Each suite (http, https) has its own port, so its sample holds only
    // its own packets; the agents record every packet (--sample-rate 1).
    const port = https ? 5410 : 5400;
    const base = env(https ? 'PCAPD_SDK_HTTPS_URL' : 'PCAPD_SDK_HTTP_URL');
    const before = await historyPackets(base, token, account);
    await sendTraffic(0, 5, port);
    await sendTraffic(1, 6, port);
    await sendTraffic(0, 2, port + 1); // not matching
    // A fence after them: one more frame each (not matching). Until both
    // histories can show the fence (a partial block becomes visible about a
    // second after its first packet), every frame before it is visible too;
    // one sample per minute, so the sample itself cannot be retried. (Counts
    // alone could grow by frames of earlier tests written late.)
    const fence = Date.now();
    await sendTraffic(0, 1, port + 2);
    await sendTraffic(1, 1, port + 2);
    let now;
    let newest;
    await until(async () => {
      now = await historyPackets(base, token, account);
      newest = await historyNewest(base, token, account);
      return now[agents[0]] >= before[agents[0]] + 8 && now[agents[1]] >= before[agents[1]] + 7 &&
        newest[agents[0]] >= fence && newest[agents[1]] >= fence;
    }, () => `history packets ${JSON.stringify(before)} -> ${JSON.stringify(now)}, newest ${JSON.stringify(newest)} (fence ${fence})`);
    const s = await P().create({
      account_id: account, type: 'simple', system: 'magic-transit', time_limit: 60, packet_limit: 100,
      filter_v1: { source_address: '192.0.2.1', protocol: 17, destination_port: port },
    });
    assert.match(s.id, ID);
    assert.equal(s.type, 'simple');
    assert.equal(s.system, 'magic-transit');
    assert.equal(s.time_limit, 60);
    assert.deepEqual(s.filter_v1, { source_address: '192.0.2.1', protocol: 17, destination_port: port });
    assert.match(s.submitted, SUBMITTED);
    assert.ok(s.offset_time, 'offset_time missing');
    const done = await waitStatus(cf(), account, s.id);
    assert.equal(done.status, 'success', JSON.stringify(done));
    const resp = await P().download.get(s.id, { account_id: account });
    assert.equal(resp.headers.get('content-type'), 'application/vnd.tcpdump.pcap');
    const buf = assertPcap(await resp.arrayBuffer());
    const file = outFile(`sdk-sample-${label.replace(/\W/g, '')}-${s.id}.pcap`);
    fs.writeFileSync(file, buf);
    assert.equal(tsharkCount(file), 11, JSON.stringify(done));
    // A sample capture cannot be stopped.
    await rejectsWith(P().stop(s.id, { account_id: account }), Cloudflare.ConflictError, 409, 1008, 'pcap_id');
  });

  test(`${label}: create full on two agents, list, get, download one merged pcap`, T, async () => {
    const c = await P().create({
      account_id: account, type: 'full', system: 'magic-transit', time_limit: 300, colo_name: colo.toUpperCase(),
      destination_conf: bucket, filter_v1: { destination_port: 5300, protocol: 17 },
    });
    fullId = c.id;
    assert.match(c.id, ID);
    assert.equal(c.type, 'full');
    assert.equal(c.colo_name.toLowerCase(), colo);
    assert.equal(c.destination_conf, bucket);
    assert.ok(['pending', 'running'].includes(c.status), c.status);
    await waitRunning(cf(), account, c.id, agents.length);
    await sendTraffic(0, 7, 5300);
    await sendTraffic(1, 9, 5300);
    await sendTraffic(0, 3, 5301); // not matching
    // Stopped once every frame is counted: a time limit would race the sender.
    await waitCaptured(cf(), account, c.id, 16);
    await P().stop(c.id, { account_id: account });
    const done = await waitStatus(cf(), account, c.id);
    assert.equal(done.status, 'success', JSON.stringify(done));
    assert.equal(done.packets_captured, 16);
    assert.ok(!done.error_message);
    for (const a of agents) {
      assert.ok(fs.existsSync(path.join(bucketDir(bucket), `pcap_${c.id}_${a}.pcap`)), `no object of ${a}`);
    }
    const ids = [];
    for await (const p of P().list({ account_id: account })) ids.push(p.id);
    assert.ok(ids.includes(c.id));
    const got = await P().get(c.id, { account_id: account });
    assert.equal(got.id, c.id);
    assert.equal(got.submitted, c.submitted);
    const resp = await P().download.get(c.id, { account_id: account });
    assert.equal(resp.headers.get('content-type'), 'application/vnd.tcpdump.pcap');
    const buf = assertPcap(await resp.arrayBuffer());
    const file = outFile(`sdk-${label.replace(/\W/g, '')}-${c.id}.pcap`);
    fs.writeFileSync(file, buf);
    assert.equal(tsharkCount(file), 16);
  });

  test(`${label}: stop a running full capture; conflicts are ConflictError`, T, async () => {
    const c = await P().create({
      account_id: account, type: 'full', system: 'magic-transit', time_limit: 300, colo_name: agents[0],
      destination_conf: bucket, packet_limit: 1000, filter_v1: { destination_port: 5302 },
    });
    await rejectsWith(P().download.get(c.id, { account_id: account }), Cloudflare.ConflictError, 409, 1008,
      'pcap_id');
    await waitRunning(cf(), account, c.id, 1);
    await sendTraffic(0, 4, 5302);
    await waitCaptured(cf(), account, c.id, 4);
    // Typed void: whatever the body holds, the SDK user gets nothing to rely on.
    await P().stop(c.id, { account_id: account });
    const mid = await P().get(c.id, { account_id: account });
    assert.match(mid.stop_requested ?? '', SUBMITTED);
    const done = await waitStatus(cf(), account, c.id);
    assert.equal(done.status, 'success', JSON.stringify(done));
    assert.equal(done.stop_reason, 'user', 'the stop, not the time limit, ended it');
    assert.equal(done.packets_captured, 4);
    await rejectsWith(P().stop(c.id, { account_id: account }), Cloudflare.ConflictError, 409, 1008, 'pcap_id');
    const buf = assertPcap(await (await P().download.get(c.id, { account_id: account })).arrayBuffer());
    const file = outFile(`sdk-stop-${c.id}.pcap`);
    fs.writeFileSync(file, buf);
    assert.equal(tsharkCount(file), 4);
  });

  test(`${label}: get, download, stop of an unknown id are NotFoundError`, T, async () => {
    const id = '0123456789abcdef0123456789abcdef';
    await rejectsWith(P().get(id, { account_id: account }), Cloudflare.NotFoundError, 404, 1003, 'pcap_id');
    await rejectsWith(P().download.get(id, { account_id: account }), Cloudflare.NotFoundError, 404, 1003, 'pcap_id');
    await rejectsWith(P().stop(id, { account_id: account }), Cloudflare.NotFoundError, 404, 1003, 'pcap_id');
    assert.ok(fullId, 'the full capture test did not run');
    assert.equal((await P().get(fullId.toUpperCase(), { account_id: account })).id, fullId);
  });

  test(`${label}: list pages through the SDK's query option, with the true total`, T, async () => {
    // The SDK's list() is one page with no parameters (the 50 newest);
    // request options carry Cloudflare's page and per_page.
    const all = [];
    for await (const p of P().list({ account_id: account })) all.push(p.id);
    assert.ok(all.length >= 3 && all.length <= 50, `${all.length} captures`);
    const first = await P().list({ account_id: account }, { query: { per_page: 2 } });
    assert.deepEqual(first.result.map((p) => p.id), all.slice(0, 2));
    assert.deepEqual(first.body.result_info, {
      page: 1, per_page: 2, count: 2, total_count: all.length, total_pages: Math.ceil(all.length / 2),
    });
    const second = await P().list({ account_id: account }, { query: { page: 2, per_page: 2 } });
    assert.deepEqual(second.result.map((p) => p.id), all.slice(2, 4));
    assert.equal(second.body.result_info.total_count, all.length);
    await rejectsWith(P().list({ account_id: account }, { query: { per_page: 0 } }), Cloudflare.BadRequestError,
      400, 1002, 'per_page');
  });
}

export { validatedBucket };
