// SPDX-License-Identifier: MIT
// How pcapd's errors reach SDK users: the SDK's error classes by status, the
// envelope's errors[0].code, and no silent retries (x-should-retry: false).
import assert from 'node:assert/strict';
import test from 'node:test';

import { Cloudflare, WAIT_MS, client, env, rejectsWith, waitStatus } from './common.mjs';

const T = { timeout: 2 * WAIT_MS };
const account = env('PCAPD_SDK_ACCOUNT_ID');
const other = env('PCAPD_SDK_OTHER_ACCOUNT_ID');
const full = (over = {}) => ({
  account_id: account, type: 'full', system: 'magic-transit', time_limit: 5, colo_name: env('PCAPD_SDK_COLO'),
  destination_conf: env('PCAPD_SDK_BUCKET'), ...over,
});

async function ids(cf, acc = account) {
  return (await cf.magicTransit.pcaps.list({ account_id: acc })).result.map((p) => p.id).sort();
}

test('BadRequestError: a field out of range, named in errors[0].message', T, async () => {
  const cf = client();
  const before = await ids(cf);
  const e = await rejectsWith(cf.magicTransit.pcaps.create(full({ time_limit: 301 })), Cloudflare.BadRequestError, 400,
    1002, 'time_limit');
  assert.match(e.errors[0].message, /301/);
  assert.deepEqual(e.errors[0].source, { pointer: '/time_limit' });
  await rejectsWith(cf.magicTransit.pcaps.create({ ...full(), packet_limit: 0 }), Cloudflare.BadRequestError, 400,
    1002, 'packet_limit');
  const f = await rejectsWith(cf.magicTransit.pcaps.create({ ...full(), filter_v1: { destination_port: 70000 } }),
    Cloudflare.BadRequestError, 400, 1002, 'filter_v1.destination_port');
  assert.deepEqual(f.errors[0].source, { pointer: '/filter_v1/destination_port' });
  await rejectsWith(cf.magicTransit.pcaps.ownership.create({ account_id: account, destination_conf: 'nope' }),
    Cloudflare.BadRequestError, 400, 1002, 'destination_conf');
  assert.deepEqual(await ids(cf), before);
});

test('members the schema does not name are ignored (a newer SDK, a copied object); colo echoed', T,
  async () => {
    const cf = client();
    // The docs' "colo" (not the schema's colo_name) is answered with "colo".
    const c = await cf.magicTransit.pcaps.create(full({
      time_limit: 300, packets_remaining: 0, status: 'success', agents: [], some_future_option: { on: true },
      colo_name: undefined, colo: env('PCAPD_SDK_COLO'),
    }));
    assert.equal(c.status === 'pending' || c.status === 'running', true, JSON.stringify(c));
    assert.equal(c.colo, env('PCAPD_SDK_COLO'));
    assert.equal(c.colo_name, env('PCAPD_SDK_COLO'));
    await cf.magicTransit.pcaps.stop(c.id, { account_id: account });
    await waitStatus(cf, account, c.id);
    const before = await ids(cf);
    await rejectsWith(cf.magicTransit.pcaps.create(full({ packets_remaining: 0, time_limit: 0 })),
      Cloudflare.BadRequestError, 400, 1002, 'time_limit');
    assert.deepEqual(await ids(cf), before);
  });

test('BadRequestError 1006 (bucket not validated) and 1007 (no online agent)', T, async () => {
  const cf = client({ https: true, prefix: false });
  const before = await ids(cf);
  await rejectsWith(cf.magicTransit.pcaps.create(full({ destination_conf: `file://${env('PCAPD_SDK_BUCKET_ROOT')}/never` })),
    Cloudflare.BadRequestError, 400, 1006, 'destination_conf');
  await rejectsWith(cf.magicTransit.pcaps.create(full({ colo_name: 'nowhere' })), Cloudflare.BadRequestError, 400,
    1007, 'colo_name');
  assert.deepEqual(await ids(cf), before);
});

test('AuthenticationError: unknown token, on both prefixes', T, async () => {
  for (const prefix of [true, false]) {
    const cf = client({ prefix, token: 'pcapd_not_a_token' });
    await rejectsWith(cf.magicTransit.pcaps.list({ account_id: account }), Cloudflare.AuthenticationError, 401, 10000);
    await rejectsWith(cf.magicTransit.pcaps.create(full()), Cloudflare.AuthenticationError, 401, 10000);
  }
  const legacy = client({ apiKey: 'pcapd_nope', apiEmail: env('PCAPD_SDK_EMAIL') });
  await rejectsWith(legacy.magicTransit.pcaps.list({ account_id: account }), Cloudflare.AuthenticationError, 401, 10000);
});

test('PermissionDeniedError: other account, read scope, agent token', T, async () => {
  const cf = client({ token: env('PCAPD_SDK_OTHER_TOKEN') });
  await rejectsWith(cf.magicTransit.pcaps.list({ account_id: account }), Cloudflare.PermissionDeniedError, 403, 10000);
  const ro = client({ token: env('PCAPD_SDK_READ_TOKEN') });
  const before = await ids(ro);
  await rejectsWith(ro.magicTransit.pcaps.create(full()), Cloudflare.PermissionDeniedError, 403, 10000);
  await rejectsWith(ro.magicTransit.pcaps.ownership.create({ account_id: account, destination_conf: env('PCAPD_SDK_BUCKET') }),
    Cloudflare.PermissionDeniedError, 403, 10000);
  const agent = client({ token: env('PCAPD_SDK_AGENT_TOKEN') });
  await rejectsWith(agent.magicTransit.pcaps.list({ account_id: account }), Cloudflare.PermissionDeniedError, 403, 10000);
  assert.deepEqual(await ids(ro), before);
});

test('NotFoundError for unknown ids', T, async () => {
  const cf = client({ https: true });
  await rejectsWith(cf.magicTransit.pcaps.get('f'.repeat(32), { account_id: account }), Cloudflare.NotFoundError, 404,
    1003, 'pcap_id');
  await rejectsWith(cf.magicTransit.pcaps.ownership.delete('e'.repeat(32), { account_id: account }),
    Cloudflare.NotFoundError, 404, 1003, 'ownership_id');
});

test('RateLimitError 1004 for a second sample within the interval, never retried', T, async () => {
  const cf = client({ token: env('PCAPD_SDK_OTHER_TOKEN') });
  const body = { account_id: other, type: 'simple', system: 'magic-transit', time_limit: 1, packet_limit: 10 };
  await cf.magicTransit.pcaps.create(body);
  const before = await ids(cf, other);
  const e = await rejectsWith(cf.magicTransit.pcaps.create(body), Cloudflare.RateLimitError, 429, 1004);
  // The real wait, in seconds, in both the header and the message.
  const wait = Number(e.headers.get('retry-after'));
  assert.ok(Number.isInteger(wait) && wait >= 1 && wait <= 60, `retry-after ${e.headers.get('retry-after')}`);
  assert.ok(e.errors[0].message.endsWith(`next allowed in ${wait} s`), e.errors[0].message);
  // With the SDK's default retries: x-should-retry: false makes it give up at
  // once instead of sleeping and retrying twice (counted, not timed).
  let sent = 0;
  const retrying = new Cloudflare({
    baseURL: `${env('PCAPD_SDK_HTTP_URL')}/client/v4`, apiToken: env('PCAPD_SDK_OTHER_TOKEN'), maxRetries: 2,
    fetch: (...args) => {
      sent += 1;
      return fetch(...args);
    },
  });
  await rejectsWith(retrying.magicTransit.pcaps.create(body), Cloudflare.RateLimitError, 429, 1004);
  assert.equal(sent, 1, 'the SDK retried');
  assert.deepEqual(await ids(cf, other), before);
});

test('legacy X-Auth-Email + X-Auth-Key through the SDK', T, async () => {
  const cf = client({ apiKey: env('PCAPD_SDK_KEY'), apiEmail: env('PCAPD_SDK_EMAIL'), https: true });
  const page = await cf.magicTransit.pcaps.list({ account_id: account });
  assert.ok(Array.isArray(page.result));
  const owns = (await cf.magicTransit.pcaps.ownership.get({ account_id: account })).result;
  assert.ok(owns.some((o) => o.destination_conf === env('PCAPD_SDK_BUCKET')));
});
