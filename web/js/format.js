// SPDX-License-Identifier: MIT
// Pure formatting helpers: numbers, sizes, times, filters, progress. No DOM,
// no clock of their own (callers pass "now"), so node --test runs them as is.

export const TERMINAL = Object.freeze(['success', 'failed']);
export const STATUSES = Object.freeze(['pending', 'running', 'conversion_pending', 'conversion_running', 'success', 'failed']);

const STATUS_LABELS = {
  pending: 'Pending',
  running: 'Running',
  conversion_pending: 'Writing',
  conversion_running: 'Writing',
  success: 'Success',
  failed: 'Failed',
};

// The words shown for a capture's status (unknown ones as they are).
export function statusLabel(status) {
  return STATUS_LABELS[status] ?? String(status ?? '');
}

export function isTerminal(status) {
  return TERMINAL.includes(status);
}

export function typeLabel(type) {
  if (type === 'full') return 'Full';
  if (type === 'simple') return 'Sample';
  return String(type ?? '');
}

// 12345 -> "12,345"; anything not a finite number -> "—".
export function formatCount(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
  const s = String(Math.trunc(Math.abs(n)));
  const grouped = s.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return (n < 0 ? '-' : '') + grouped;
}

// Bytes in binary units, one decimal from KiB on: "512 B", "1.5 KiB", "3.0 GiB".
export function formatBytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

// Milliseconds since the epoch of an RFC 3339 time, or NaN.
export function parseTime(s) {
  if (typeof s !== 'string' || s === '') return NaN;
  return Date.parse(s);
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

// "2026-11-23 10:00:05 UTC" (times are shown in UTC, as the API and the
// agents' logs give them); "—" for no time.
export function formatTime(s) {
  const t = parseTime(s);
  if (Number.isNaN(t)) return '—';
  const d = new Date(t);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
}

// A span in seconds in words: "45 s", "2 min 5 s", "3 h 12 min", "2 d 4 h".
export function formatDuration(seconds) {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) return '—';
  const s = Math.floor(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return s % 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s / 60} min`;
  if (s < 86400) {
    const m = Math.floor((s % 3600) / 60);
    return m ? `${Math.floor(s / 3600)} h ${m} min` : `${Math.floor(s / 3600)} h`;
  }
  const h = Math.floor((s % 86400) / 3600);
  return h ? `${Math.floor(s / 86400)} d ${h} h` : `${Math.floor(s / 86400)} d`;
}

// How long ago a time was, from now (ms): "just now", "12 s ago", "5 min ago".
export function formatAge(s, nowMs) {
  const t = parseTime(s);
  if (Number.isNaN(t)) return '—';
  const sec = Math.floor((nowMs - t) / 1000);
  if (sec < 2) return 'just now';
  if (sec < 60) return `${sec} s ago`;
  if (sec < 3600) return `${Math.floor(sec / 60)} min ago`;
  if (sec < 86400) return `${Math.floor(sec / 3600)} h ago`;
  return `${Math.floor(sec / 86400)} d ago`;
}

const FILTER_WORDS = [
  ['source_address', 'src'],
  ['destination_address', 'dst'],
  ['source_port', 'sport'],
  ['destination_port', 'dport'],
  ['protocol', 'proto'],
];

// One line for a filter_v1 object: "src 192.0.2.0/24, dport 443, proto tcp,
// bpf: vlan 100"; "everything" when it selects all.
export function filterSummary(f) {
  if (!f || typeof f !== 'object') return 'everything';
  const parts = [];
  for (const [key, word] of FILTER_WORDS) {
    if (f[key] !== undefined && f[key] !== null && f[key] !== '') parts.push(`${word} ${f[key]}`);
  }
  if (f.inner === true) parts.push('also inside tunnels');
  if (typeof f.bpf === 'string' && f.bpf !== '') parts.push(`bpf: ${f.bpf}`);
  for (const key of Object.keys(f)) {
    if (key !== 'bpf' && key !== 'inner' && !FILTER_WORDS.some(([k]) => k === key) && f[key] !== null) parts.push(`${key} ${JSON.stringify(f[key])}`);
  }
  return parts.length ? parts.join(', ') : 'everything';
}

// One line for pcapd's dialect-neutral filter ("filter": clauses OR-ed, a
// clause's members ANDed, "both" for either direction, "bpf" ANDed with the
// whole), which a capture made in another dialect carries instead of
// filter_v1: "src 192.0.2.1, dport 80;443, either direction or proto 17".
export function modelFilterSummary(m) {
  if (!m || typeof m !== 'object') return 'everything';
  const words = [['src', 'src'], ['dst', 'dst'], ['sport', 'sport'], ['dport', 'dport']];
  const clauses = (Array.isArray(m.clauses) ? m.clauses : []).map((c) => {
    const parts = [];
    for (const [key, word] of words) {
      if (Array.isArray(c?.[key]) && c[key].length) parts.push(`${word} ${c[key].join(';')}`);
    }
    if (typeof c?.proto === 'number') parts.push(`proto ${PROTO_NAMES[c.proto] ?? c.proto}`);
    if (c?.both === true) parts.push('either direction');
    if (c?.inner === true) parts.push('also inside tunnels');
    return parts.join(', ');
  }).filter((t) => t !== '');
  let out = clauses.join(' or ');
  if (typeof m.bpf === 'string' && m.bpf !== '') out = out ? `(${out}), bpf: ${m.bpf}` : `bpf: ${m.bpf}`;
  return out || 'everything';
}

const PROTO_NAMES = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6' };

// A capture's filter in words, whichever dialect made it.
export function captureFilterSummary(c) {
  if (c && c.filter_v1 === undefined && c.filter && typeof c.filter === 'object') return modelFilterSummary(c.filter);
  return filterSummary(c?.filter_v1);
}

// The Azure resource a capture was made as ("rg1 / nw1 / pc1"), or null for
// a capture made through the Cloudflare dialect or pcapctl.
export function azureNameOf(c) {
  const a = c?.azure;
  if (!a || typeof a !== 'object') return null;
  return [a.resource_group, a.network_watcher, a.name].map((x) => String(x ?? '')).join(' / ');
}

// Continuous (rotating files) settings in words: "ring of 10 files of
// 1.0 MiB" or "every file kept, 1.0 MiB each"; null when not continuous.
export function continuousOf(c) {
  const k = c?.continuous;
  if (!k || typeof k !== 'object') return null;
  const size = formatBytes(k.file_size);
  const text = k.ring ? `ring of ${formatCount(k.file_count)} files of ${size}` : `every file kept, ${size} each`;
  return k.session_limit ? `${text}, for ${formatDuration(k.session_limit)}` : text;
}

// Where a capture runs: the colo or agent name of a full capture; every
// agent for a sample.
export function targetOf(c) {
  if (c?.type === 'full') return c.colo_name || '—';
  return 'all agents';
}

// Packets of a capture: packets_captured (full), else the agents' sum when
// known (a sample's page), else null.
export function packetsOf(c) {
  if (typeof c?.packets_captured === 'number') return c.packets_captured;
  if (Array.isArray(c?.agents) && c.agents.length) return c.agents.reduce((n, a) => n + (a.packets || 0), 0);
  return null;
}

// Progress of a running full capture towards its end, from now (ms, on the
// controller's clock): {value: 0..1, label}. A capture ends when every agent
// has reached a limit (limits apply on each agent) or the time limit passed,
// so with the agents' shares known the value is the least advanced agent's;
// without them (the list) it is the time alone. Never 1 while running.
// null when not pending or running.
export function progressOf(c, nowMs) {
  if (!c || (c.status !== 'running' && c.status !== 'pending')) return null;
  const limit = c.time_limit > 0 ? c.time_limit : 0;
  const elapsed = Math.max(0, (nowMs - parseTime(c.submitted)) / 1000);
  const tf = limit && Number.isFinite(elapsed) ? Math.min(1, elapsed / limit) : 0;
  let value = tf;
  let label = limit ? `${formatDuration(Math.min(elapsed, limit))} of ${formatDuration(limit)}` : '';
  const agents = Array.isArray(c.agents) ? c.agents.filter((a) => a.status !== 'failed') : [];
  if (agents.length) {
    const each = agents.map((a) => {
      let f = tf;
      if (c.packet_limit > 0) f = Math.max(f, (a.packets || 0) / c.packet_limit);
      if (c.byte_limit > 0) f = Math.max(f, (a.bytes || 0) / c.byte_limit);
      return Math.min(1, f);
    });
    value = Math.min(...each);
    if (c.packet_limit > 0) {
      const p = agents.reduce((n, a) => n + (a.packets || 0), 0);
      const total = c.packet_limit * agents.length;
      label += `${label ? ', ' : ''}${formatCount(p)} of ${formatCount(total)} packets`;
    }
  }
  if (c.status === 'pending') label = label ? `pending, ${label}` : 'pending';
  return { value: Math.min(value, 0.99), label };
}

// The list as the page shows it: newest first, then only the chosen status
// and type ('' = any).
export function selectCaptures(list, { status = '', type = '' } = {}) {
  const out = (Array.isArray(list) ? list : []).filter((c) =>
    (!status || c.status === status ||
      (status === 'writing' && (c.status === 'conversion_pending' || c.status === 'conversion_running'))) &&
    (!type || c.type === type));
  // Each time parsed once, not once per comparison.
  const keyed = out.map((c) => ({ c, t: parseTime(c.submitted) || 0 }));
  keyed.sort((a, b) => b.t - a.t || (a.c.id < b.c.id ? 1 : a.c.id > b.c.id ? -1 : 0));
  return keyed.map((k) => k.c);
}

const SECRET_KEY = /(secret|sig|signature|token|password|passwd|pwd|credential|key)/i;

// A destination_conf as it may be shown: a password in the authority and the
// values of query parameters that look like secrets (…secret…, sig, token,
// password, …key…) are replaced by REDACTED. The page never shows a secret,
// whatever the API returns.
export function redactUri(uri) {
  if (typeof uri !== 'string') return '';
  let out = uri.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^/@?#]*)@/i, (m, scheme, userinfo) => {
    const colon = userinfo.indexOf(':');
    return colon < 0 ? `${scheme}REDACTED@` : `${scheme}${userinfo.slice(0, colon)}:REDACTED@`;
  });
  const q = out.indexOf('?');
  if (q < 0) return out;
  const hash = out.indexOf('#', q);
  const query = out.slice(q + 1, hash < 0 ? undefined : hash);
  const rest = hash < 0 ? '' : out.slice(hash);
  const redacted = query.split('&').map((kv) => {
    const eq = kv.indexOf('=');
    if (eq < 0) return kv;
    return SECRET_KEY.test(kv.slice(0, eq)) ? `${kv.slice(0, eq)}=REDACTED` : kv;
  }).join('&');
  out = `${out.slice(0, q)}?${redacted}${rest}`;
  return out;
}

// Where a challenge file was written: "<dir>/<file>" for a file:// bucket,
// else "<file> in <uri>".
export function challengeLocation(uri, filename) {
  if (typeof uri === 'string' && uri.startsWith('file://')) {
    const dir = uri.slice('file://'.length).replace(/\/+$/, '');
    return `${dir}/${filename}`;
  }
  return `${filename} in ${redactUri(uri)}`;
}
