// SPDX-License-Identifier: MIT
// web/js/api.js over a fake fetch: the token goes in the Authorization
// header only, the envelope is unwrapped, errors carry the API's message
// and the field it names, paging degrades to one page, the controller's
// clock is estimated from Date headers.
import assert from 'node:assert/strict';
import test from 'node:test';

import { webModule } from '../cases.mjs';

const { Api, ApiError } = await webModule('js/api.js');
const ACC = '0123456789abcdef0123456789abcdef';

function fake(answers) {
  const calls = [];
  const fetchImpl = async (url, init) => {
    calls.push({ url, init });
    const a = answers.shift();
    if (a instanceof Error) throw a;
    const headers = new Headers(a.headers ?? {});
    if (a.json !== undefined) headers.set('Content-Type', 'application/json');
    return new Response(a.json !== undefined ? JSON.stringify(a.json) : (a.body ?? null), { status: a.status ?? 200, headers });
  };
  return { calls, fetchImpl };
}

const ok = (result, info) => ({ json: { success: true, errors: [], messages: [], result, ...(info ? { result_info: info } : {}) } });
const fail = (status, code, message) => ({ status, json: { success: false, errors: [{ code, message }], messages: [], result: null } });

test('the token is a Bearer header, never in the URL; JSON bodies are sent as JSON', async () => {
  const { calls, fetchImpl } = fake([ok({ id: 'x' })]);
  const api = new Api({ token: 'pcapd_secret', account: ACC, fetchImpl });
  await api.createCapture({ type: 'full' });
  assert.equal(calls[0].url, `/client/v4/accounts/${ACC}/pcaps`);
  assert.equal(calls[0].init.method, 'POST');
  assert.equal(calls[0].init.headers.Authorization, 'Bearer pcapd_secret');
  assert.equal(calls[0].init.headers['Content-Type'], 'application/json');
  assert.equal(calls[0].init.body, '{"type":"full"}');
  assert.equal(calls[0].init.credentials, 'omit');
  assert.ok(!calls[0].url.includes('secret'));
});

test('errors carry the API message, code, status and the field named', async () => {
  const { fetchImpl } = fake([fail(400, 1002, 'time_limit: 301 is outside 1..300'), { status: 502, body: 'bad gateway' }, new TypeError('network down')]);
  const api = new Api({ token: 't', account: ACC, fetchImpl });
  await assert.rejects(api.createCapture({}), (e) => e instanceof ApiError && e.status === 400 && e.code === 1002 &&
    e.message === 'time_limit: 301 is outside 1..300' && e.field === 'time_limit');
  await assert.rejects(api.getCapture('a'.repeat(32)), (e) => e.status === 502 && e.message === 'HTTP 502' && e.field === null);
  await assert.rejects(api.agents(), (e) => e.status === 0 && /cannot reach the controller: network down/.test(e.message));
});

test('the list asks for a page and says what came back; without paging, one page; an unchanged answer is not parsed', async () => {
  const list = [{ id: '1' }, { id: '2' }];
  const first = ok(list, { page: 1, per_page: 50, count: 2, total_count: 2 });
  const { calls, fetchImpl } = fake([
    first,
    ok(list, { page: 3, per_page: 2, count: 2, total_count: 1000 }),
    ok(list),
    first,
  ]);
  const api = new Api({ token: 't', account: ACC, fetchImpl });
  const a = await api.listCaptures();
  assert.deepEqual({ ...a, text: undefined }, { captures: list, page: 1, perPage: 50, total: 2, text: undefined });
  assert.equal(a.text, JSON.stringify(first.json));
  assert.equal(calls[0].url, `/client/v4/accounts/${ACC}/pcaps?page=1&per_page=50`);
  const b = await api.listCaptures({ page: 3, perPage: 2 });
  assert.deepEqual([b.page, b.perPage, b.total], [3, 2, 1000]);
  const c = await api.listCaptures({ page: 2, previousText: a.text });
  assert.deepEqual([c.page, c.perPage, c.total, c.captures.length], [1, 2, 2, 2]);
  assert.deepEqual(await api.listCaptures({ previousText: a.text }), { unchanged: true, text: a.text });
});

test('download: the bytes and the name from Content-Disposition; a refusal is an ApiError', async () => {
  const { fetchImpl } = fake([
    { body: new Uint8Array([0xd4, 0xc3, 0xb2, 0xa1]), headers: { 'Content-Disposition': 'attachment; filename="pcap_abc.pcap"' } },
    fail(409, 1008, 'pcap_id: capture is running; it can be downloaded once its status is success'),
  ]);
  const api = new Api({ token: 't', account: ACC, fetchImpl });
  const { blob, filename } = await api.download('abc');
  assert.equal(filename, 'pcap_abc.pcap');
  assert.equal(blob.size, 4);
  await assert.rejects(api.download('abc'), (e) => e.code === 1008 && /running/.test(e.message));
});

test('204 and the ownership calls', async () => {
  const { calls, fetchImpl } = fake([{ status: 204 }, ok({ status: 'success' })]);
  const api = new Api({ token: 't', account: ACC, fetchImpl });
  await api.removeBucket('b'.repeat(32));
  assert.equal(calls[0].init.method, 'DELETE');
  await api.validateBucket('file:///x', 'tok');
  assert.equal(calls[1].init.body, '{"destination_conf":"file:///x","ownership_challenge":"tok"}');
});

test('the controller clock comes from Date headers (median of the last answers)', async () => {
  const ahead = new Date(Date.now() + 3600e3).toUTCString();
  const { fetchImpl } = fake([ok([], null), ok([], null), ok([], null)].map((a) => ({ ...a, headers: { Date: ahead } })));
  const api = new Api({ token: 't', account: ACC, fetchImpl });
  assert.ok(Math.abs(api.now() - Date.now()) < 50);
  for (let i = 0; i < 3; i++) await api.agents();
  const skew = api.now() - Date.now();
  assert.ok(skew > 3600e3 - 2000 && skew < 3600e3 + 2000, String(skew));
});
