// SPDX-License-Identifier: MIT
// Agents: the fleet as the controller sees it (GET …/pcaps/agents, a pcapd
// extension): online or not, colo, interfaces, last report, the recorder
// (sampling rate, recording or why not) and the span of its sampled
// history, its drops and its errors. Refreshed every 5 s.

import { h, fill, table, cell, notice } from '../dom.js';
import { formatAge, formatBytes, formatCount, formatDuration, formatTime, parseTime } from '../format.js';
import { poller } from '../poll.js';

const REFRESH_MS = 5000;

function recorder(hist) {
  if (!hist) return '—';
  const rate = hist.sample_rate > 0 ? `1 in ${formatCount(hist.sample_rate)}` : 'off';
  return [h('span', { class: `status ${hist.recording ? 's-success' : 's-failed'}` }, hist.recording ? 'Recording' : 'Not recording'),
    h('span', { class: 'small nowrap' }, ` ${rate}`)];
}

function span(hist) {
  if (!hist || !hist.oldest || !hist.newest) return 'empty';
  const secs = (parseTime(hist.newest) - parseTime(hist.oldest)) / 1000;
  return [h('span', null, `${formatTime(hist.oldest)} → ${formatTime(hist.newest)}`),
    h('span', { class: 'small' }, ` (${formatDuration(secs)}; ${formatCount(hist.packets)} packets, ${formatBytes(hist.bytes)}, ${formatCount(hist.segments)} segment${hist.segments === 1 ? '' : 's'})`)];
}

export function mount(ctx) {
  ctx.title('Agents');
  const msg = notice();
  const summary = h('p', { class: 'summary' });
  const { el: tableEl, tbody } = table(['Agent', 'State', 'Colo', 'Interfaces', 'Last seen', 'Recorder', 'History (oldest → newest)', 'Drops', 'Errors'], 'Agents');
  const empty = h('p', { class: 'empty', hidden: true }, 'No agent has reported to this controller yet.');
  fill(ctx.main, h('h1', { tabindex: '-1' }, 'Agents'), msg.el, summary, h('div', { class: 'table-wrap' }, tableEl), empty);

  async function refresh() {
    try {
      const list = await ctx.api.agents();
      const now = ctx.api.now();
      list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      fill(tbody, list.map((a) => {
        const hist = a.history && typeof a.history === 'object' ? a.history : null;
        const errors = [hist?.error, a.error].filter(Boolean);
        return h('tr', { 'data-agent': a.name },
          cell('Agent', h('strong', null, a.name), a.version ? h('span', { class: 'small' }, ` v${a.version}`) : null),
          cell('State', h('span', { class: `status ${a.online ? 's-success' : 's-failed'}` }, a.online ? 'Online' : 'Offline')),
          cell('Colo', a.colo || '—'),
          cell('Interfaces', String(a.interfaces ?? '').split(',').filter(Boolean).join(', ') || '—'),
          cell('Last seen', h('span', { title: formatTime(a.last_seen) }, formatAge(a.last_seen, now))),
          cell('Recorder', recorder(hist)),
          cell('History (oldest → newest)', span(hist)),
          cell('Drops', h('span', { class: hist?.drops > 0 ? 'warn' : null }, formatCount(hist?.drops ?? NaN))),
          cell('Errors', errors.length ? errors.map((e) => h('span', { class: 'err-text block' }, e)) : 'none'));
      }));
      const online = list.filter((a) => a.online).length;
      summary.textContent = `${online} of ${list.length} agent${list.length === 1 ? '' : 's'} online`;
      tableEl.hidden = list.length === 0;
      empty.hidden = list.length !== 0;
      msg.clear();
    } catch (e) {
      if (!ctx.onAuthLost(e)) msg.error(`Could not list the agents: ${e.message}`);
    }
  }
  const p = poller(refresh, REFRESH_MS);
  return { unmount: () => p.stop() };
}
