// SPDX-License-Identifier: MIT
// web/js/validate.js: every bad value of the shared table gets the API's
// message, word for word, on its own field and first in the controller's
// order; valid forms get none; the pieces (glibc's inet_pton, C's %.15g,
// the message quoting) on their own.
import assert from 'node:assert/strict';
import test from 'node:test';

import { caseField, caseForm, loadBounds, table, webModule } from '../cases.mjs';

const V = await webModule('js/validate.js');
const BOUNDS = await loadBounds();
const NOW = Date.parse('2026-11-23T10:00:00Z');

test('bounds are the C constants', () => {
  assert.deepEqual(BOUNDS.time_limit, { min: 1, max: 300 });
  assert.deepEqual(BOUNDS.packet_limit, { min: 1, max: 10000 });
  assert.equal(BOUNDS.byte_limit.max, 1e9);
  assert.equal(BOUNDS.colo_max, 63);
  assert.equal(BOUNDS.bpf_max, 4096);
  assert.equal(BOUNDS.protocol_names.tcp, 6);
  assert.equal(BOUNDS.protocol_names['ipv6-icmp'], 58);
});

test('every bad value of the table gets the API message on its field', () => {
  assert.ok(table.cases.length >= 40);
  for (const c of table.cases) {
    const { form, message } = caseForm(c, NOW);
    const { errors } = V.checkCapture(form, BOUNDS, NOW);
    const field = caseField(c);
    assert.equal(errors[field], message, `${JSON.stringify(c.set)}`);
    // The first error in the controller's order is this one: the others are clean.
    assert.deepEqual(Object.keys(errors), [field], `${JSON.stringify(c.set)}: ${JSON.stringify(errors)}`);
  }
});

test('valid forms of the table have no error and send what was typed', () => {
  for (const c of table.valid) {
    const { form } = caseForm(c, NOW);
    const { errors, body } = V.checkCapture(form, BOUNDS, NOW);
    assert.deepEqual(errors, {}, JSON.stringify(c.set));
    assert.equal(body.type, c.type);
    assert.equal(body.system, 'magic-transit');
  }
});

test('the request body: numbers as JSON numbers, filter strings as typed, empty controls left out', () => {
  const { body, errors } = V.checkCapture({
    type: 'full', time_limit: ' 60 ', packet_limit: '1e2', byte_limit: '', colo_name: 'lab',
    destination_conf: 'file:///b', offset_time: '2026-11-23T09:00:00Z', source_address: '',
    destination_address: '192.0.2.7', source_port: '  ', destination_port: '80;443', protocol: 'tcp', bpf: '',
  }, BOUNDS, NOW);
  assert.deepEqual(errors, {});
  assert.deepEqual(body, {
    type: 'full', system: 'magic-transit', time_limit: 60, packet_limit: 100, colo_name: 'lab',
    destination_conf: 'file:///b', filter_v1: { destination_address: '192.0.2.7', destination_port: '80;443', protocol: 'tcp' },
  });
  // The tunnel box: sent as true when ticked, left out otherwise (in the order the API reads it).
  const inner = V.checkCapture({ type: 'full', time_limit: '1', colo_name: 'a', destination_conf: 'b', destination_port: '53', inner: true }, BOUNDS, NOW);
  assert.deepEqual(inner.body.filter_v1, { destination_port: '53', inner: true });
  assert.equal(V.checkCapture({ type: 'simple', time_limit: '1', packet_limit: '1', inner: false }, BOUNDS, NOW).body.filter_v1, undefined);
  const simple = V.checkCapture({ type: 'simple', time_limit: '300', packet_limit: '5', colo_name: 'x', destination_conf: 'y', byte_limit: '3' }, BOUNDS, NOW);
  assert.deepEqual(simple.body, { type: 'simple', system: 'magic-transit', time_limit: 300, packet_limit: 5 });
});

test('a filter whose JSON is over the limit is refused as the API does', () => {
  const list = Array.from({ length: 250 }, (_, i) => `2001:db8:0:${i.toString(16)}::1-2001:db8:0:${i.toString(16)}::ff`).join(';');
  const { errors } = V.checkCapture({ type: 'full', time_limit: '1', colo_name: 'a', destination_conf: 'file:///b', source_address: list }, BOUNDS, NOW);
  assert.equal(errors.filter_v1, 'filter_v1: longer than 8192 bytes');
});

test('formatG15 is glibc printf("%.15g"): exact value, ties to even', () => {
  const want = [[0.000001, '1e-06'], [10.5, '10.5'], [1e21, '1e+21'], [123.456789012345678, '123.456789012346'],
    [1e-5, '1e-05'], [100000000000000.5, '100000000000000'], [1e15, '1e+15'], [0.1, '0.1'], [-2.5, '-2.5'], [0, '0'],
    [5e-324, '4.94065645841247e-324'], [999999999999999.5, '1e+15'], [1.7976931348623157e308, '1.79769313486232e+308'],
    [3.0000000000000004, '3']];
  for (const [v, s] of want) assert.equal(V.formatG15(v), s, String(v));
});

test('addresses parse as glibc inet_pton does', () => {
  const good6 = ['::ffff:1.2.3.4', '1:2:3:4:5:6:7::', '::', '::1.2.3.4', '1:2:3:4:5:6:1.2.3.4', 'FE80::1', '1:2:3:4:5:6:7:8'];
  const bad6 = ['1::2:3:4:5:6:7:8', '2001:db8::1::2', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7:1.2.3.4', ':1::2', '1::2:', '12345::', '::ffff:01.2.3.4', ''];
  for (const s of good6) assert.ok(V.parseIPv6(s), s);
  for (const s of bad6) assert.equal(V.parseIPv6(s), null, s);
  assert.deepEqual(V.parseIPv6('2001:db8::1'), [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
  assert.deepEqual(V.parseIPv6('1::2').slice(0, 4), [0, 1, 0, 0]);
  const good4 = ['0.0.0.0', '255.255.255.255', '192.0.2.1'];
  const bad4 = ['01.2.3.4', '1.2.3', '1.2.3.4.', '256.1.1.1', '1.2.3.04', ' 1.2.3.4', '1..2.3'];
  for (const s of good4) assert.ok(V.parseIPv4(s), s);
  for (const s of bad4) assert.equal(V.parseIPv4(s), null, s);
});

test('quote: bytes outside printable ASCII are ?, 68 bytes at most', () => {
  assert.equal(V.quote('é\t<b>'), '???<b>');
  assert.equal(V.quote('x'.repeat(70)), `${'x'.repeat(68)}...`);
  assert.equal(V.quote('x'.repeat(68)), 'x'.repeat(68));
});

test('fieldOfMessage finds the field an API message names first', () => {
  assert.equal(V.fieldOfMessage('filter_v1.bpf: syntax error'), 'filter_v1.bpf');
  assert.equal(V.fieldOfMessage('colo_name: no online agent'), 'colo_name');
  assert.equal(V.fieldOfMessage('Forbidden: this token has scope read'), null);
  assert.equal(V.fieldOfMessage('internal error: x'), null);
  assert.equal(V.fieldOfMessage(undefined), null);
});

test('account ids: 32 hexadecimal digits, lowercased', () => {
  assert.deepEqual(V.checkAccount(' 0123456789ABCDEF0123456789abcdef '), { value: '0123456789abcdef0123456789abcdef', error: null });
  assert.equal(V.checkAccount('').error, 'account: required');
  assert.equal(V.checkAccount('xyz').error, 'account: must be 32 hexadecimal digits');
});

test('localToIso: a local datetime as UTC RFC 3339 without fractions', () => {
  const iso = V.localToIso('2026-11-23T10:00:05');
  assert.match(iso, /^2026-11-2\dT\d\d:00:05Z$/);
  assert.equal(Date.parse(iso), new Date('2026-11-23T10:00:05').getTime());
  assert.equal(V.localToIso(''), '');
});
