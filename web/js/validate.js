// SPDX-License-Identifier: MIT
// The checks of the Start a capture form, made as the controller makes them
// (src/api/cloudflare_validate.c, src/model/filterjson.c,
// src/filter/parse.c) with its bounds (bounds.js, generated from the C
// constants) and, word for word, its messages: what a user sees while
// typing is what the API would answer. The controller stays the authority:
// the request is checked again there, and its answer is shown next to the
// field it names.
//
// Pure: each check takes the text of one control and returns
// {value, error}: value is what goes into the request (undefined: the field
// is left out), error the API's message or null.

// Blanks the C parsers skip around list items and names.
const isBlank = (c) => c === ' ' || c === '\t';

function trimBlank(s) {
  let a = 0;
  let b = s.length;
  while (a < b && isBlank(s[a])) a++;
  while (b > a && isBlank(s[b - 1])) b--;
  return s.slice(a, b);
}

const encoder = new TextEncoder();

// Outside text in a message as parse.c quotes it: at most 68 bytes, then
// "...", every byte outside printable ASCII shown as '?'.
export const QUOTE_MAX = 68;
export function quote(s) {
  const bytes = encoder.encode(s);
  let out = '';
  for (let i = 0; i < bytes.length && i < QUOTE_MAX; i++) {
    const b = bytes[i];
    out += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '?';
  }
  return bytes.length > QUOTE_MAX ? `${out}...` : out;
}

// The exact decimal value of a finite double: {digits, point} with
// |v| = 0.digits × 10^point (digits without leading zeros; '' for 0).
function exactDecimal(v) {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Math.abs(v));
  const hi = view.getUint32(0);
  const lo = view.getUint32(4);
  const biased = (hi >>> 20) & 0x7ff;
  let m = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let e = biased - 1075;
  if (biased === 0) e = -1074;
  else m |= 1n << 52n;
  if (m === 0n) return { digits: '', point: 0 };
  let digits;
  let point;
  if (e >= 0) {
    digits = (m << BigInt(e)).toString();
    point = digits.length;
  } else {
    digits = (m * 5n ** BigInt(-e)).toString();
    point = digits.length + e;
  }
  return { digits: digits.replace(/0+$/, ''), point };
}

// C's printf("%.15g", v) for a finite number (glibc: exact value, rounded
// half to even).
export function formatG15(v) {
  const P = 15;
  const sign = v < 0 || Object.is(v, -0) ? '-' : '';
  let { digits, point } = exactDecimal(v);
  if (digits === '') return `${sign}0`;
  if (digits.length > P) {
    const keep = digits.slice(0, P);
    const rest = digits.slice(P);
    const up = rest[0] > '5' || (rest[0] === '5' && (/[1-9]/.test(rest.slice(1)) || Number(keep[P - 1]) % 2 === 1));
    let n = BigInt(keep);
    if (up) n += 1n;
    digits = n.toString();
    if (digits.length > P) point += 1;
    digits = digits.slice(0, P);
  }
  const x = point - 1; // the decimal exponent of the first digit
  const strip = (t) => (t.includes('.') ? t.replace(/0+$/, '').replace(/\.$/, '') : t);
  if (x < -4 || x >= P) {
    const e = Math.abs(x);
    return `${sign}${strip(`${digits[0]}.${digits.slice(1)}`)}e${x < 0 ? '-' : '+'}${e < 10 ? '0' : ''}${e}`;
  }
  if (point <= 0) return `${sign}${strip(`0.${'0'.repeat(-point)}${digits}`)}`;
  if (digits.length <= point) return `${sign}${digits}${'0'.repeat(point - digits.length)}`;
  return `${sign}${strip(`${digits.slice(0, point)}.${digits.slice(point)}`)}`;
}

const NUMBER_TEXT = /^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$/;

// A whole number field (time_limit, packet_limit, byte_limit): what
// get_whole() says of the JSON value the form sends. Text that is not a
// number, or too large to send exactly, is sent as the string it is.
export function checkWhole(field, text, { min, max }, required) {
  const t = String(text ?? '').trim();
  if (t === '') return { value: undefined, error: required ? `${field}: required` : null };
  const range = `${min}..${max}`;
  if (!NUMBER_TEXT.test(t)) return { value: t, error: `${field}: must be a whole number in ${range}` };
  const v = Number(t);
  if (!Number.isFinite(v) || Math.abs(v) > Number.MAX_SAFE_INTEGER) {
    return { value: t, error: `${field}: must be a whole number in ${range}` };
  }
  if (!Number.isInteger(v)) return { value: v, error: `${field}: ${formatG15(v)} is not a whole number` };
  if (v < min || v > max) return { value: v, error: `${field}: ${v === 0 ? 0 : v} is outside ${range}` };
  return { value: v, error: null };
}

// colo_name: 1..colo_max characters of [A-Za-z0-9._-].
export function checkColo(field, text, bounds) {
  const s = String(text ?? '');
  if (s === '') return { value: undefined, error: `${field}: required` };
  const n = encoder.encode(s).length;
  if (n > bounds.colo_max) return { value: s, error: `${field}: must be 1..${bounds.colo_max} characters long` };
  if (!/^[A-Za-z0-9._-]+$/.test(s)) {
    return { value: s, error: `${field}: only letters, digits, '.', '_' and '-' are allowed` };
  }
  return { value: s, error: null };
}

// ';'-separated items (for_each_item in parse.c): blanks around items are
// ignored, one trailing ';' is allowed, other empty items are errors; at most
// list_max items.
function eachItem(field, s, bounds, item) {
  if (s.length === 0) return `${field}: is empty`;
  let start = 0;
  let count = 0;
  while (start < s.length) {
    const semi = s.indexOf(';', start);
    const end = semi < 0 ? s.length : semi;
    const it = trimBlank(s.slice(start, end));
    if (it.length === 0) {
      const trailing = semi >= 0 && end + 1 === s.length && start > 0;
      if (!trailing) return `${field}: "${quote(s)}" has an empty list item`;
    } else {
      const e = item(it);
      if (e) return e;
      if (++count > bounds.list_max) return `${field}: more than ${bounds.list_max} entries`;
    }
    start = end + 1;
  }
  return null;
}

const DIGITS = /^[0-9]+$/;

// parse_u64(s, 0, max): 'ok', 'range' (too large) or 'bad'.
function parseUnsigned(s, max) {
  if (!DIGITS.test(s)) return { kind: 'bad' };
  const v = BigInt(s);
  return v > BigInt(max) ? { kind: 'range' } : { kind: 'ok', value: Number(v) };
}

function parsePort(field, s) {
  const r = parseUnsigned(s, 65535);
  if (r.kind === 'range') return { error: `${field}: ${quote(s)} is outside 0..65535` };
  if (r.kind === 'bad') return { error: `${field}: "${quote(s)}" is not a port number` };
  return { value: r.value };
}

// A port field of filter_v1 as a string: "80", "80-90", "80;443".
export function checkPorts(field, text, bounds) {
  const s = String(text ?? '');
  if (s.trim() === '') return { value: undefined, error: null };
  const error = eachItem(field, s, bounds, (it) => {
    const dash = it.indexOf('-');
    if (dash < 0) return parsePort(field, it).error ?? null;
    const lo = parsePort(field, trimBlank(it.slice(0, dash)));
    if (lo.error) return lo.error;
    const hi = parsePort(field, trimBlank(it.slice(dash + 1)));
    if (hi.error) return hi.error;
    if (lo.value > hi.value) return `${field}: range ${quote(it)} ends before it starts`;
    return null;
  });
  return { value: s, error };
}

// inet_pton(AF_INET) as glibc has it: four decimal parts 0..255, no leading
// zeros. Returns 4 bytes or null.
export function parseIPv4(s) {
  const out = [0];
  let sawDigit = false;
  let octets = 0;
  for (const ch of s) {
    if (ch >= '0' && ch <= '9') {
      const cur = out[out.length - 1];
      const nv = cur * 10 + (ch.charCodeAt(0) - 48);
      if (sawDigit && cur === 0) return null;
      if (nv > 255) return null;
      out[out.length - 1] = nv;
      if (!sawDigit) {
        if (++octets > 4) return null;
        sawDigit = true;
      }
    } else if (ch === '.' && sawDigit) {
      if (octets === 4) return null;
      out.push(0);
      sawDigit = false;
    } else {
      return null;
    }
  }
  return octets < 4 ? null : out;
}

const HEX = '0123456789abcdef';

// inet_pton(AF_INET6) as glibc has it. Returns 16 bytes or null.
export function parseIPv6(src) {
  const out = new Array(16).fill(0);
  let tp = 0;
  let colonp = -1;
  let i = 0;
  if (src[i] === ':') {
    i++;
    if (src[i] !== ':') return null;
  }
  let curtok = i;
  let sawXdigit = false;
  let digits = 0;
  let val = 0;
  while (i < src.length) {
    const ch = src[i++];
    const d = HEX.indexOf(ch.toLowerCase());
    if (d >= 0 && ch !== '') {
      val = (val << 4) | d;
      if (++digits > 4) return null;
      sawXdigit = true;
      continue;
    }
    if (ch === ':') {
      curtok = i;
      if (!sawXdigit) {
        if (colonp >= 0) return null;
        colonp = tp;
        continue;
      } else if (i >= src.length) {
        return null;
      }
      if (tp + 2 > 16) return null;
      out[tp++] = (val >> 8) & 0xff;
      out[tp++] = val & 0xff;
      sawXdigit = false;
      digits = 0;
      val = 0;
      continue;
    }
    if (ch === '.' && tp + 4 <= 16) {
      const v4 = parseIPv4(src.slice(curtok));
      if (v4) {
        for (const b of v4) out[tp++] = b;
        sawXdigit = false;
        break;
      }
    }
    return null;
  }
  if (sawXdigit) {
    if (tp + 2 > 16) return null;
    out[tp++] = (val >> 8) & 0xff;
    out[tp++] = val & 0xff;
  }
  if (colonp >= 0) {
    if (tp === 16) return null;
    const n = tp - colonp;
    for (let k = 1; k <= n; k++) {
      out[16 - k] = out[colonp + n - k];
      out[colonp + n - k] = 0;
    }
    tp = 16;
  }
  return tp === 16 ? out : null;
}

const ADDR_TEXT_MAX = 63;

function parseAddr(field, s) {
  if (s.length > 0 && encoder.encode(s).length <= ADDR_TEXT_MAX) {
    const v4 = parseIPv4(s);
    if (v4) return { family: 4, bytes: v4.concat(new Array(12).fill(0)) };
    const v6 = parseIPv6(s);
    if (v6) return { family: 6, bytes: v6 };
  }
  return { error: `${field}: "${quote(s)}" is not an IPv4 or IPv6 address` };
}

function compareBytes(a, b) {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

// An address field of filter_v1: an address, a CIDR block, a range "a-b"
// or a ';' list of those.
export function checkAddrs(field, text, bounds) {
  const s = String(text ?? '');
  if (s.trim() === '') return { value: undefined, error: null };
  const error = eachItem(field, s, bounds, (it) => {
    const dash = it.indexOf('-');
    const slash = it.indexOf('/');
    if (dash >= 0) {
      const lo = parseAddr(field, trimBlank(it.slice(0, dash)));
      if (lo.error) return lo.error;
      const hi = parseAddr(field, trimBlank(it.slice(dash + 1)));
      if (hi.error) return hi.error;
      if (lo.family !== hi.family) return `${field}: range ${quote(it)} mixes IPv4 and IPv6`;
      if (compareBytes(lo.bytes, hi.bytes) > 0) return `${field}: range ${quote(it)} ends before it starts`;
      return null;
    }
    if (slash >= 0) {
      const a = parseAddr(field, it.slice(0, slash));
      if (a.error) return a.error;
      const maxbits = a.family === 4 ? 32 : 128;
      const p = parseUnsigned(it.slice(slash + 1), maxbits);
      if (p.kind === 'range') return `${field}: prefix length in ${quote(it)} is outside 0..${maxbits}`;
      if (p.kind === 'bad') return `${field}: "${quote(it)}" has no prefix length after '/'`;
      return null;
    }
    return parseAddr(field, it).error ?? null;
  });
  return { value: s, error };
}

// The protocol of filter_v1 as a string: a number 0..255 or a name.
export function checkProtocol(field, text, bounds) {
  const raw = String(text ?? '');
  if (raw.trim() === '') return { value: undefined, error: null };
  const s = trimBlank(raw);
  const r = parseUnsigned(s, bounds.protocol_max);
  if (r.kind === 'ok') return { value: raw, error: null };
  if (r.kind === 'range') return { value: raw, error: `${field}: ${quote(s)} is outside 0..${bounds.protocol_max}` };
  const known = Object.keys(bounds.protocol_names).some((n) => n.length === s.length && n === s.toLowerCase());
  if (known) return { value: raw, error: null };
  return { value: raw, error: `${field}: "${quote(s)}" is not a protocol number 0..${bounds.protocol_max} or a known name` };
}

// The pcap-filter expression: its length only; its syntax is libpcap's,
// checked by the controller when the capture is created.
export function checkBpf(field, text, bounds) {
  const s = String(text ?? '');
  if (s.trim() === '') return { value: undefined, error: null };
  const n = encoder.encode(s).length;
  if (n > bounds.bpf_max) return { value: s, error: `${field}: ${n} bytes, at most ${bounds.bpf_max}` };
  return { value: s, error: null };
}

// offset_time from an RFC 3339 text: within the last offset_past_s seconds
// and at most offset_future_s ahead, on the controller's clock (nowMs).
export function checkOffset(field, iso, nowMs, bounds) {
  if (iso === undefined || iso === null || iso === '') return { value: undefined, error: null };
  const t = Date.parse(iso);
  const shown = iso.slice(0, 64);
  if (Number.isNaN(t)) {
    return { value: iso, error: `${field}: "${shown}" is not an RFC 3339 date-time such as "2024-05-01T12:00:00Z"` };
  }
  if (t < nowMs - bounds.offset_past_s * 1000) return { value: iso, error: `${field}: ${shown} is more than 24 hours ago` };
  if (t > nowMs + bounds.offset_future_s * 1000) return { value: iso, error: `${field}: ${shown} is in the future` };
  return { value: iso, error: null };
}

// A datetime-local value ("2026-11-23T10:00" or with seconds), read in the
// browser's time zone, as RFC 3339 UTC without fractions; '' stays ''.
export function localToIso(text) {
  if (!text) return '';
  const t = new Date(text);
  if (Number.isNaN(t.getTime())) return String(text);
  return t.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// The form's controls, in the order the controller checks them (so the first
// error shown is the one it would answer).
export const CAPTURE_FIELDS = Object.freeze([
  'time_limit', 'packet_limit', 'byte_limit', 'colo_name', 'destination_conf', 'offset_time',
  'filter_v1.source_address', 'filter_v1.destination_address', 'filter_v1.source_port',
  'filter_v1.destination_port', 'filter_v1.protocol', 'filter_v1.inner', 'filter_v1.bpf',
]);

// One control of the form checked on its own: {value, error}.
export function checkField(name, form, bounds, nowMs) {
  const full = form.type === 'full';
  switch (name) {
    case 'time_limit': return checkWhole(name, form.time_limit, bounds.time_limit, true);
    case 'packet_limit': return checkWhole(name, form.packet_limit, bounds.packet_limit, !full);
    case 'byte_limit': return full ? checkWhole(name, form.byte_limit, bounds.byte_limit, false) : { value: undefined, error: null };
    case 'colo_name': return full ? checkColo(name, form.colo_name, bounds) : { value: undefined, error: null };
    case 'destination_conf': {
      if (!full) return { value: undefined, error: null };
      const s = String(form.destination_conf ?? '');
      return s === '' ? { value: undefined, error: 'destination_conf: required' } : { value: s, error: null };
    }
    case 'offset_time': return full ? { value: undefined, error: null } : checkOffset(name, form.offset_time, nowMs, bounds);
    case 'filter_v1.source_address': return checkAddrs(name, form.source_address, bounds);
    case 'filter_v1.destination_address': return checkAddrs(name, form.destination_address, bounds);
    case 'filter_v1.source_port': return checkPorts(name, form.source_port, bounds);
    case 'filter_v1.destination_port': return checkPorts(name, form.destination_port, bounds);
    case 'filter_v1.protocol': return checkProtocol(name, form.protocol, bounds);
    // A checkbox: sent only when ticked (true), so it cannot be wrong.
    case 'filter_v1.inner': return { value: form.inner === true ? true : undefined, error: null };
    case 'filter_v1.bpf': return checkBpf(name, form.bpf, bounds);
    default: return { value: undefined, error: null };
  }
}

// The whole form: {body, errors} where errors maps control names to messages
// (in the controller's order) and body is the request to send.
export function checkCapture(form, bounds, nowMs) {
  const errors = {};
  const body = { type: form.type === 'full' ? 'full' : 'simple', system: 'magic-transit' };
  const filter = {};
  for (const name of CAPTURE_FIELDS) {
    const { value, error } = checkField(name, form, bounds, nowMs);
    if (error) errors[name] = error;
    if (value === undefined) continue;
    if (name.startsWith('filter_v1.')) filter[name.slice('filter_v1.'.length)] = value;
    else body[name] = value;
  }
  if (Object.keys(filter).length) {
    body.filter_v1 = filter;
    const n = encoder.encode(JSON.stringify(filter)).length;
    if (n > bounds.filter_json_max && !Object.keys(errors).some((k) => k.startsWith('filter_v1'))) {
      errors.filter_v1 = `filter_v1: longer than ${bounds.filter_json_max} bytes`;
    }
  }
  return { body, errors };
}

// The field an API message names first ("filter_v1.bpf: syntax error" ->
// "filter_v1.bpf"), or null.
export function fieldOfMessage(message) {
  const m = /^([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?): /.exec(String(message ?? ''));
  return m ? m[1] : null;
}

// The account id of the sign-in form: 32 hexadecimal digits.
export function checkAccount(text) {
  const s = String(text ?? '').trim();
  if (s === '') return { value: undefined, error: 'account: required' };
  if (!/^[0-9a-fA-F]{32}$/.test(s)) return { value: s, error: 'account: must be 32 hexadecimal digits' };
  return { value: s.toLowerCase(), error: null };
}
