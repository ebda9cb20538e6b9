// SPDX-License-Identifier: MIT
// web/js/format.js: what the pages show for numbers, sizes, times, filters,
// progress, the list's order and filters, and secrets in bucket URIs.
import assert from 'node:assert/strict';
import test from 'node:test';

import { webModule } from '../cases.mjs';

const F = await webModule('js/format.js');
const T0 = Date.parse('2026-11-23T10:00:00Z');

test('counts and sizes', () => {
  assert.equal(F.formatCount(0), '0');
  assert.equal(F.formatCount(1234567), '1,234,567');
  assert.equal(F.formatCount(-1000), '-1,000');
  assert.equal(F.formatCount(null), '—');
  assert.equal(F.formatCount(NaN), '—');
  assert.equal(F.formatBytes(512), '512 B');
  assert.equal(F.formatBytes(1536), '1.5 KiB');
  assert.equal(F.formatBytes(3 * 1024 ** 3), '3.0 GiB');
  assert.equal(F.formatBytes(undefined), '—');
});

test('times and durations', () => {
  assert.equal(F.formatTime('2026-11-23T10:00:05.123456Z'), '2026-11-23 10:00:05 UTC');
  assert.equal(F.formatTime('2026-11-23T12:00:05+02:00'), '2026-11-23 10:00:05 UTC');
  assert.equal(F.formatTime(''), '—');
  assert.equal(F.formatTime(undefined), '—');
  assert.equal(F.formatDuration(45), '45 s');
  assert.equal(F.formatDuration(125), '2 min 5 s');
  assert.equal(F.formatDuration(120), '2 min');
  assert.equal(F.formatDuration(3 * 3600 + 12 * 60 + 9), '3 h 12 min');
  assert.equal(F.formatDuration(2 * 86400 + 4 * 3600), '2 d 4 h');
  assert.equal(F.formatDuration(-1), '—');
  assert.equal(F.formatAge('2026-11-23T10:00:00Z', T0 + 500), 'just now');
  assert.equal(F.formatAge('2026-11-23T10:00:00Z', T0 + 12000), '12 s ago');
  assert.equal(F.formatAge('2026-11-23T10:00:00Z', T0 + 5 * 60000), '5 min ago');
  assert.equal(F.formatAge('2026-11-23T10:00:00Z', T0 + 3 * 3600e3), '3 h ago');
});

test('labels', () => {
  assert.equal(F.statusLabel('conversion_running'), 'Writing');
  assert.equal(F.statusLabel('something_new'), 'something_new');
  assert.equal(F.typeLabel('simple'), 'Sample');
  assert.equal(F.typeLabel('full'), 'Full');
  assert.ok(F.isTerminal('failed') && F.isTerminal('success') && !F.isTerminal('running'));
  assert.equal(F.targetOf({ type: 'full', colo_name: 'ord02' }), 'ord02');
  assert.equal(F.targetOf({ type: 'simple' }), 'all agents');
});

test('filter summary: every field in a fixed order, the expression last, unknown fields shown', () => {
  assert.equal(F.filterSummary({}), 'everything');
  assert.equal(F.filterSummary(null), 'everything');
  assert.equal(F.filterSummary({ bpf: 'vlan 100', destination_port: 443, source_address: '192.0.2.0/24', protocol: 'tcp' }),
    'src 192.0.2.0/24, dport 443, proto tcp, bpf: vlan 100');
  assert.equal(F.filterSummary({ future_field: [1] }), 'future_field [1]');
  assert.equal(F.filterSummary({ destination_port: '53', inner: true }), 'dport 53, also inside tunnels');
  assert.equal(F.filterSummary({ inner: false }), 'everything');
});

test('packets: packets_captured, else the agents sum, else null', () => {
  assert.equal(F.packetsOf({ packets_captured: 7 }), 7);
  assert.equal(F.packetsOf({ agents: [{ packets: 2 }, { packets: 3 }] }), 5);
  assert.equal(F.packetsOf({ type: 'simple' }), null);
});

test('progress: time alone in the list; the least advanced agent with shares; never done while running', () => {
  const c = { id: 'x', status: 'running', submitted: '2026-11-23T10:00:00Z', time_limit: 60, packet_limit: 100 };
  assert.equal(F.progressOf({ ...c, status: 'success' }, T0), null);
  let p = F.progressOf(c, T0 + 15000);
  assert.equal(p.value, 0.25);
  assert.equal(p.label, '15 s of 1 min');
  p = F.progressOf({ ...c, agents: [{ status: 'running', packets: 90 }, { status: 'running', packets: 50 }] }, T0 + 6000);
  assert.equal(p.value, 0.5);
  assert.equal(p.label, '6 s of 1 min, 140 of 200 packets');
  p = F.progressOf({ ...c, agents: [{ status: 'done', packets: 100 }, { status: 'failed', packets: 0 }] }, T0 + 1000);
  assert.equal(p.value, 0.99);
  p = F.progressOf(c, T0 + 600000);
  assert.equal(p.value, 0.99);
  assert.match(F.progressOf({ ...c, status: 'pending' }, T0).label, /^pending/);
});

test('the list: newest first (ties by id), filtered by status (writing = both conversion states) and type', () => {
  const list = [
    { id: 'a', type: 'full', status: 'success', submitted: '2026-11-23T10:00:00Z' },
    { id: 'b', type: 'simple', status: 'failed', submitted: '2026-11-23T10:00:02Z' },
    { id: 'c', type: 'full', status: 'conversion_running', submitted: '2026-11-23T10:00:01Z' },
    { id: 'd', type: 'full', status: 'conversion_pending', submitted: '2026-11-23T10:00:01Z' },
  ];
  assert.deepEqual(F.selectCaptures(list).map((c) => c.id), ['b', 'd', 'c', 'a']);
  assert.deepEqual(F.selectCaptures(list, { type: 'full' }).map((c) => c.id), ['d', 'c', 'a']);
  assert.deepEqual(F.selectCaptures(list, { status: 'writing' }).map((c) => c.id), ['d', 'c']);
  assert.deepEqual(F.selectCaptures(list, { status: 'failed', type: 'full' }), []);
  assert.deepEqual(F.selectCaptures(undefined), []);
  assert.deepEqual(list.map((c) => c.id), ['a', 'b', 'c', 'd'], 'the input is not reordered');
});

test('secrets in bucket URIs are REDACTED', () => {
  assert.equal(F.redactUri('file:///srv/pcaps'), 'file:///srv/pcaps');
  assert.equal(F.redactUri('s3://user:hunter2@bucket/dir?region=us-east-1&secret-access-key=abc&x=1'),
    's3://user:REDACTED@bucket/dir?region=us-east-1&secret-access-key=REDACTED&x=1');
  assert.equal(F.redactUri('https://acct.blob.core.windows.net/c?sv=2022&sig=ABC%2F&se=1#frag'),
    'https://acct.blob.core.windows.net/c?sv=2022&sig=REDACTED&se=1#frag');
  assert.equal(F.redactUri('r2://token@bucket'), 'r2://REDACTED@bucket');
  assert.equal(F.redactUri('s3://b?AccessKeyId=AK&SessionToken=T'), 's3://b?AccessKeyId=REDACTED&SessionToken=REDACTED');
  assert.equal(F.redactUri(undefined), '');
});

test('where a challenge file was written', () => {
  assert.equal(F.challengeLocation('file:///srv/b/', 'ownership-challenge-1.txt'), '/srv/b/ownership-challenge-1.txt');
  assert.equal(F.challengeLocation('s3://b?secret=x', 'f.txt'), 'f.txt in s3://b?secret=REDACTED');
});

test('a capture made through the Azure dialect: its filter model, resource name and continuous files', () => {
  const model = {
    clauses: [
      { src: ['192.0.2.1'], dport: ['80', '443-444'], proto: 6, both: true },
      { dst: ['2001:db8::1'], proto: 17 },
      {},
    ],
    bpf: 'vlan 100',
  };
  assert.equal(F.modelFilterSummary(model),
    '(src 192.0.2.1, dport 80;443-444, proto tcp, either direction or dst 2001:db8::1, proto udp), bpf: vlan 100');
  assert.equal(F.modelFilterSummary({}), 'everything');
  assert.equal(F.modelFilterSummary({ clauses: [{ proto: 200, inner: true }] }), 'proto 200, also inside tunnels');
  assert.equal(F.modelFilterSummary(null), 'everything');
  // filter_v1 wins when the capture has one; "filter" is read only without it
  assert.equal(F.captureFilterSummary({ filter_v1: { destination_port: 53 }, filter: model }), 'dport 53');
  assert.equal(F.captureFilterSummary({ filter: { clauses: [{ sport: ['53'] }] } }), 'sport 53');
  assert.equal(F.captureFilterSummary({}), 'everything');

  assert.equal(F.azureNameOf({ azure: { resource_group: 'rg1', network_watcher: 'nw1', name: '<b>pc</b>' } }),
    'rg1 / nw1 / <b>pc</b>');
  assert.equal(F.azureNameOf({ type: 'full' }), null);

  assert.equal(F.continuousOf({ continuous: { ring: true, file_count: 10, file_size: 1048576, session_limit: 3600 } }),
    'ring of 10 files of 1.0 MiB, for 1 h');
  assert.equal(F.continuousOf({ continuous: { ring: false, file_count: 0, file_size: 2048, session_limit: 0 } }),
    'every file kept, 2.0 KiB each');
  assert.equal(F.continuousOf({}), null);
});
