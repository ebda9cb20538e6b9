// SPDX-License-Identifier: MIT
// One capture: status and stop reason, its error, every agent's share,
// Download (the merged file) once it succeeded, Stop while it runs, and a
// chart of packets over time sampled while the page is open. Refreshed every
// second until the capture is finished.

import { ApiError } from '../api.js';
import { h, svg, fill, table, cell, notice } from '../dom.js';
import { Series, geometry } from '../chart.js';
import {
  azureNameOf, captureFilterSummary, continuousOf, formatBytes, formatCount, formatDuration, formatTime, isTerminal, packetsOf, redactUri,
  statusLabel, typeLabel,
} from '../format.js';
import { poller } from '../poll.js';
import { progressCell } from './captures.js';

const REFRESH_MS = 1000;
const CHART_W = 560;
const CHART_H = 160;

const STOP_WORDS = {
  none: '—',
  time: 'time limit reached',
  packets: 'packet limit reached',
  bytes: 'byte limit reached',
  user: 'stopped by a user',
  agent_lost: 'an agent was lost',
  agent_shutdown: 'an agent was stopped',
  error: 'an error',
};

function chart(series) {
  const g = geometry(series.points, CHART_W, CHART_H);
  const label = series.points.length < 2
    ? 'Packets over time: waiting for a second sample'
    : `Packets over time: ${formatCount(g.last)} packets, ${formatDuration(g.seconds)} since this page opened`;
  return svg('svg', { class: 'chart', viewBox: `0 0 ${CHART_W} ${CHART_H}`, role: 'img', 'aria-label': label },
    svg('title', null, label),
    svg('line', { x1: 48, y1: CHART_H - 20, x2: CHART_W - 8, y2: CHART_H - 20, class: 'axis' }),
    svg('line', { x1: 48, y1: 8, x2: 48, y2: CHART_H - 20, class: 'axis' }),
    svg('text', { x: 44, y: 14, 'text-anchor': 'end', class: 'tick' }, formatCount(g.yMax)),
    svg('text', { x: 44, y: CHART_H - 20, 'text-anchor': 'end', class: 'tick' }, '0'),
    svg('text', { x: CHART_W - 8, y: CHART_H - 4, 'text-anchor': 'end', class: 'tick' },
      g.seconds ? `${formatDuration(g.seconds)}` : ''),
    g.d ? svg('path', { d: g.d, class: 'line' }) : null);
}

function dl(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

export function mount(ctx, [idParam]) {
  const id = idParam.toLowerCase();
  ctx.title(`Capture ${id.slice(0, 8)}`);
  const series = new Series();
  const actionMsg = notice();
  const loadMsg = notice();
  const facts = h('div');
  const statusLine = h('div', { class: 'status-line' });
  const progressSlot = h('div');
  const chartSlot = h('section', { class: 'chart-box', 'aria-labelledby': 'chart-title', hidden: true },
    h('h2', { id: 'chart-title' }, 'Packets over time'), h('div'));
  const { el: agentsTable, tbody: agentsBody } = table(['Agent', 'Status', 'Packets', 'Bytes', 'Kernel drops', 'Object', 'Error'], 'Every agent\'s share');
  const agentsEmpty = h('p', { class: 'empty' }, 'No agent has a share yet.');
  const download = h('button', { type: 'button', disabled: true }, 'Download');
  const stop = ctx.writable ? h('button', { type: 'button', class: 'danger', hidden: true }, 'Stop') : null;
  let last = null;
  let lastStatus = null;
  let blobUrl = null;

  fill(ctx.main,
    h('p', { class: 'crumbs' }, h('a', { href: '#/captures' }, '← Captures')),
    h('div', { class: 'page-head' }, h('h1', { tabindex: '-1' }, 'Capture ', h('span', { class: 'mono' }, id))),
    loadMsg.el, statusLine, progressSlot,
    h('div', { class: 'actions' }, download, stop), actionMsg.el,
    chartSlot, facts,
    h('section', { 'aria-labelledby': 'agents-title' }, h('h2', { id: 'agents-title' }, 'Agents'),
      h('div', { class: 'table-wrap' }, agentsTable), agentsEmpty));

  function render(c) {
    const now = ctx.api.now();
    const packets = packetsOf(c);
    fill(statusLine,
      h('span', { class: `status big s-${c.status}`, id: 'capture-status' }, statusLabel(c.status)),
      c.stop_reason && c.stop_reason !== 'none' ? h('span', { class: 'small' }, ` Stopped: ${STOP_WORDS[c.stop_reason] ?? c.stop_reason}`) : null,
      c.error_message ? h('p', { class: 'notice error', role: 'alert', id: 'capture-error' }, c.error_message) : null);
    fill(progressSlot, progressCell(c, now));
    fill(facts, dl([
      ['Type', typeLabel(c.type)],
      ['Submitted', formatTime(c.submitted)],
      c.type === 'full' ? ['Colo or agent', c.colo_name || '—'] : ['Window ends', formatTime(c.offset_time)],
      azureNameOf(c) ? ['Azure capture', h('span', { class: 'mono' }, azureNameOf(c))] : null,
      c.type === 'full' && (c.destination_conf || !Array.isArray(c.outputs)) ? ['Bucket', redactUri(c.destination_conf)] : null,
      Array.isArray(c.outputs) && c.outputs.length
        ? ['Files on the agents', h('span', {}, ...c.outputs.map((o, i) => h('span', { class: 'mono' }, `${i ? ', ' : ''}${o.target}`)))]
        : null,
      continuousOf(c) ? ['Continuous', continuousOf(c)] : null,
      ['Time limit', c.type === 'full' ? (c.time_limit ? formatDuration(c.time_limit) : 'none') : `${formatDuration(c.time_limit)} window`],
      ['Packet limit', c.packet_limit ? `${formatCount(c.packet_limit)}${c.type === 'full' ? ' per agent' : ''}` : 'none'],
      c.type === 'full' ? ['Byte limit', c.byte_limit ? `${formatBytes(c.byte_limit)} per agent` : 'none'] : null,
      ['Filter', h('span', { class: 'filter' }, captureFilterSummary(c))],
      ['Packets', formatCount(packets ?? NaN)],
      ['Bytes', formatBytes(c.bytes_captured)],
      ['Kernel drops', h('span', { class: c.kernel_drops > 0 ? 'warn' : null }, formatCount(c.kernel_drops ?? NaN))],
      c.stop_requested ? ['Stop requested', formatTime(c.stop_requested)] : null,
    ]));
    const shares = Array.isArray(c.agents) ? c.agents : [];
    fill(agentsBody, shares.map((a) => h('tr', { 'data-agent': a.name },
      cell('Agent', a.name),
      cell('Status', h('span', { class: `status s-${a.status}` }, a.status)),
      cell('Packets', formatCount(a.packets)),
      cell('Bytes', formatBytes(a.bytes)),
      cell('Kernel drops', h('span', { class: a.kernel_drops > 0 ? 'warn' : null }, formatCount(a.kernel_drops))),
      cell('Object', a.object ? h('span', { class: 'mono' }, a.object) : '—'),
      cell('Error', a.error ? h('span', { class: 'err-text' }, a.error) : '—'))));
    agentsTable.hidden = shares.length === 0;
    agentsEmpty.hidden = shares.length !== 0;

    download.disabled = c.status !== 'success';
    download.title = c.status === 'success' ? 'The agents\' files merged by time into one pcap' : 'Available once the capture succeeded';
    if (stop) stop.hidden = !(c.type === 'full' && !isTerminal(c.status) && !c.stop_requested);

    const running = c.type === 'full' && (c.status === 'running' || c.status === 'pending');
    if (running && typeof packets === 'number') series.add(now, packets);
    if (running || series.points.length > 1) {
      chartSlot.hidden = false;
      fill(chartSlot.lastChild, chart(series));
    }
    if (lastStatus && lastStatus !== c.status) ctx.announce(`Capture status: ${statusLabel(c.status)}`);
    lastStatus = c.status;
  }

  async function refresh() {
    try {
      last = await ctx.api.getCapture(id);
      loadMsg.clear();
      render(last);
      if (isTerminal(last.status)) p.stop();
    } catch (e) {
      if (ctx.onAuthLost(e)) return;
      if (e instanceof ApiError && e.status === 404) {
        p.stop();
        loadMsg.error(e.message);
      } else {
        loadMsg.error(`Could not refresh: ${e.message}`);
      }
    }
  }

  download.addEventListener('click', async () => {
    actionMsg.clear();
    download.disabled = true;
    const label = download.textContent;
    download.textContent = 'Downloading…';
    try {
      const { blob, filename } = await ctx.api.download(id);
      if (blobUrl) URL.revokeObjectURL(blobUrl);
      blobUrl = URL.createObjectURL(blob);
      const a = h('a', { href: blobUrl, download: filename, hidden: true });
      document.body.appendChild(a);
      a.click();
      a.remove();
      actionMsg.info(`Downloaded ${filename} (${formatBytes(blob.size)}).`);
    } catch (e) {
      if (!ctx.onAuthLost(e)) actionMsg.error(`Download failed: ${e.message}`);
    } finally {
      download.textContent = label;
      download.disabled = last?.status !== 'success';
    }
  });

  stop?.addEventListener('click', async () => {
    actionMsg.clear();
    stop.disabled = true;
    try {
      last = await ctx.api.stopCapture(id);
      actionMsg.info('Stop requested: the agents finish and write what they captured.');
      p.now();
    } catch (e) {
      if (!ctx.onAuthLost(e)) actionMsg.error(`Stop failed: ${e.message}`);
    } finally {
      stop.disabled = false;
    }
  });

  const p = poller(refresh, REFRESH_MS);
  return {
    unmount() {
      p.stop();
      if (blobUrl) URL.revokeObjectURL(blobUrl);
    },
  };
}
