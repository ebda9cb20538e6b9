// SPDX-License-Identifier: MIT
// Captures: the account's captures, newest first, refreshed every 2 s, with
// filters by status and type, a progress bar for running ones, packets,
// kernel drops and the filter in one line. Rows are kept by id and rebuilt
// only when their capture changed, so a refresh of a long list costs little.
//
// Timing marks for bench/dashboard.mjs: pcapd:captures:first-render and
// pcapd:captures:refresh, with measures ":took" (request to drawn) and
// ":drawing" (answer received to drawn).
//
// Paging: the list asks for page/per_page; a controller that pages answers
// with result_info.total_count beyond the page and the pager shows, one that
// does not answers its whole (newest-first) list as page 1.

import { h, fill, table, cell, notice } from '../dom.js';
import {
  azureNameOf, captureFilterSummary, formatAge, formatCount, formatTime, packetsOf, progressOf, selectCaptures,
  statusLabel, targetOf, typeLabel,
} from '../format.js';
import { poller } from '../poll.js';

const REFRESH_MS = 2000;
const PER_PAGE = 50;
const COLUMNS = ['ID', 'Type', 'Status', 'Target', 'Submitted', 'Packets', 'Kernel drops', 'Filter'];

function select(label, name, options, onChange) {
  const id = `sel-${name}`;
  const el = h('select', { id, name }, options.map(([v, t]) => h('option', { value: v }, t)));
  el.addEventListener('change', () => onChange(el.value));
  return h('div', { class: 'field inline' }, h('label', { for: id }, label), el);
}

export function progressCell(c, now) {
  const p = progressOf(c, now);
  if (!p) return null;
  return h('div', { class: 'progress' },
    h('progress', { max: '1', value: p.value.toFixed(3), 'aria-label': `Progress of capture ${c.id}` }),
    h('span', { class: 'small' }, p.label));
}

export function mount(ctx) {
  ctx.title('Captures');
  const state = { status: '', type: '', page: 1, list: [], text: undefined, paged: false, total: 0, perPage: PER_PAGE, first: true };
  const rows = new Map(); // id -> {sig, tr, age, progress}
  const err = notice();
  const summary = h('p', { class: 'summary', id: 'captures-summary' });
  const { el: tableEl, tbody } = table(COLUMNS, 'Captures, newest first');
  const empty = h('p', { class: 'empty', hidden: true });
  const prev = h('button', { type: 'button', class: 'secondary' }, 'Newer');
  const next = h('button', { type: 'button', class: 'secondary' }, 'Older');
  const pageText = h('span', { class: 'small' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages', hidden: true }, prev, pageText, next);

  const filters = h('div', { class: 'toolbar', role: 'group', 'aria-label': 'Filter captures' },
    select('Status', 'status', [['', 'Any status'], ['pending', 'Pending'], ['running', 'Running'],
      ['writing', 'Writing to bucket'], ['success', 'Success'], ['failed', 'Failed']],
    (v) => { state.status = v; render(); }),
    select('Type', 'type', [['', 'Any type'], ['full', 'Full'], ['simple', 'Sample']],
      (v) => { state.type = v; render(); }),
    ctx.writable ? h('a', { class: 'button', href: '#/start' }, 'Start a capture') : null);

  fill(ctx.main,
    h('div', { class: 'page-head' }, h('h1', { tabindex: '-1' }, 'Captures')),
    filters, err.el, summary, h('div', { class: 'table-wrap' }, tableEl), empty, pager);

  // Sets el's text only when it changed (a same-text write still costs a
  // relayout, a thousand times over on a long list).
  const setText = (el, text) => {
    if (el.textContent !== text) el.textContent = text;
  };

  function rowFor(c, now) {
    const sig = JSON.stringify(c);
    const old = rows.get(c.id);
    if (old && old.sig === sig) return old;
    const age = h('span', { title: formatTime(c.submitted) }, formatAge(c.submitted, now));
    const progress = h('div', { class: 'progress-slot' }, progressCell(c, now));
    const drops = c.kernel_drops ?? null;
    const tr = h('tr', { 'data-id': c.id, 'data-status': c.status },
      cell('ID', h('a', { href: `#/captures/${c.id}`, class: 'mono', title: c.id, 'aria-label': `Capture ${c.id}` },
        `${String(c.id).slice(0, 8)}…`)),
      cell('Type', typeLabel(c.type), azureNameOf(c) ? h('span', { class: 'small azure', title: 'Made through the Azure dialect' }, ` Azure: ${azureNameOf(c)}`) : null),
      cell('Status',
        h('span', { class: `status s-${c.status}` }, statusLabel(c.status)),
        c.status === 'failed' && c.error_message ? h('span', { class: 'small err-text' }, c.error_message) : null,
        progress),
      cell('Target', targetOf(c)),
      cell('Submitted', age),
      cell('Packets', formatCount(packetsOf(c) ?? NaN)),
      cell('Kernel drops', h('span', { class: drops > 0 ? 'warn' : null }, formatCount(drops ?? NaN))),
      cell('Filter', h('span', { class: 'filter' }, captureFilterSummary(c))));
    const row = { sig, tr, age, progress, c, live: c.status === 'running' || c.status === 'pending', at: now };
    rows.set(c.id, row);
    return row;
  }

  // What moves with time alone: ages, and running captures' progress.
  function tick(shown, now) {
    for (const row of shown) {
      if (row.at === now) continue; // drawn just now
      row.at = now;
      setText(row.age, formatAge(row.c.submitted, now));
      if (row.live) fill(row.progress, progressCell(row.c, now));
    }
  }

  let shownRows = [];

  // Draws state.list with the filters; keeps unchanged rows' elements and,
  // when the order is the same, the table as it is.
  function render() {
    const now = ctx.api.now();
    const shown = selectCaptures(state.list, state).map((c) => rowFor(c, now));
    const ids = new Set(state.list.map((c) => c.id));
    for (const id of rows.keys()) if (!ids.has(id)) rows.delete(id);
    const kids = tbody.children;
    const same = kids.length === shown.length && shown.every((row, i) => kids[i] === row.tr);
    if (!same) {
      const frag = document.createDocumentFragment();
      for (const row of shown) frag.appendChild(row.tr);
      fill(tbody, frag);
    }
    shownRows = shown;
    tick(shown, now);
    const n = state.list.length;
    const filtered = state.status || state.type;
    summary.textContent = state.paged
      ? `${formatCount(shown.length)} shown of ${formatCount(n)} on this page (${formatCount(state.total)} in all)`
      : `${formatCount(shown.length)} shown${filtered ? ` of ${formatCount(n)}` : ''} · refreshed ${formatTime(new Date(now).toISOString())}`;
    tableEl.hidden = shown.length === 0;
    empty.hidden = shown.length !== 0;
    if (!shown.length) {
      fill(empty, n === 0 ? 'No captures yet.' : 'No capture matches these filters.', ' ',
        n === 0 && ctx.writable ? h('a', { href: '#/start' }, 'Start a capture') : null);
    }
    const pages = Math.max(1, Math.ceil(state.total / state.perPage));
    pager.hidden = !state.paged;
    pageText.textContent = `Page ${state.page} of ${pages}`;
    prev.disabled = state.page <= 1;
    next.disabled = state.page >= pages;
  }

  async function refresh() {
    performance.mark('pcapd:captures:fetch');
    try {
      const r = await ctx.api.listCaptures({ page: state.page, perPage: PER_PAGE, previousText: state.text });
      performance.mark('pcapd:captures:received');
      if (r.unchanged) {
        const now = ctx.api.now();
        tick(shownRows, now);
        setText(summary, summary.textContent.replace(/refreshed .*$/, `refreshed ${formatTime(new Date(now).toISOString())}`));
      } else {
        state.list = r.captures;
        state.text = r.text;
        state.perPage = r.perPage || PER_PAGE;
        state.total = r.total;
        state.paged = r.total > r.captures.length || r.page > 1;
        state.page = r.page;
        render();
      }
      err.clear();
      const mark = state.first ? 'pcapd:captures:first-render' : 'pcapd:captures:refresh';
      performance.mark(mark);
      performance.measure(`${mark}:took`, 'pcapd:captures:fetch', mark);
      performance.measure(`${mark}:drawing`, 'pcapd:captures:received', mark);
      state.first = false;
    } catch (e) {
      if (!ctx.onAuthLost(e)) err.error(`Could not refresh the list: ${e.message}`);
    }
  }

  prev.addEventListener('click', () => { state.page = Math.max(1, state.page - 1); state.text = undefined; p.now(); });
  next.addEventListener('click', () => { state.page += 1; state.text = undefined; p.now(); });
  const p = poller(refresh, REFRESH_MS);
  return { unmount: () => p.stop() };
}
