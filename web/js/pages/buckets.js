// SPDX-License-Identifier: MIT
// Buckets: where full captures are written. Adding one makes the controller
// write a challenge file into it; pasting the token from that file proves
// the bucket is yours (validate); then it can receive captures. Secrets in a
// destination_conf are shown as REDACTED.

import { h, fill, field, notice, table, cell } from '../dom.js';
import { challengeLocation, formatTime, redactUri } from '../format.js';
import { BOUNDS } from '../bounds.js';

const STATUS_WORDS = { pending: 'Pending validation', success: 'Validated', failed: 'Failed' };

export function mount(ctx) {
  ctx.title('Buckets');
  const listMsg = notice();
  const { el: tableEl, tbody } = table(['Bucket', 'Status', 'Challenge file', 'Submitted', 'Validated', 'Actions'], 'Buckets');
  const empty = h('p', { class: 'empty', hidden: true }, 'No bucket yet.');
  let buckets = [];

  let addForm = null;
  if (ctx.writable) {
    const uri = field({
      label: 'Bucket URI', name: 'destination_conf', required: true,
      hint: 'file:///dir below the controller\'s bucket root (s3, gs, r2 and Azure come with later versions).',
      attrs: { autocomplete: 'off', spellcheck: 'false', placeholder: 'file:///srv/pcaps/team', maxlength: String(BOUNDS.bucket_uri_max) },
    });
    const addMsg = notice();
    const addBtn = h('button', { type: 'submit' }, 'Add bucket');
    addForm = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'add-title' },
      h('h2', { id: 'add-title' }, 'Add a bucket'), uri.wrap, addMsg.el, h('div', { class: 'actions' }, addBtn));
    addForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      addMsg.clear();
      const v = uri.input.value.trim();
      if (!v) {
        uri.setError('destination_conf: required');
        uri.input.focus();
        return;
      }
      uri.setError(null);
      addBtn.disabled = true;
      try {
        const b = await ctx.api.addBucket(v);
        uri.input.value = '';
        addMsg.info(`Added. The controller wrote the challenge file ${b.filename} to ${challengeLocation(b.destination_conf, b.filename)}: paste the token it holds below to validate the bucket.`);
        await load();
        tbody.querySelector(`tr[data-id="${CSS.escape(b.id)}"] input`)?.focus();
      } catch (e) {
        if (ctx.onAuthLost(e)) return;
        if (e.field === 'destination_conf') {
          uri.setError(e.message);
          uri.input.focus();
        } else {
          addMsg.error(e.message);
        }
      } finally {
        addBtn.disabled = false;
      }
    });
  }

  function actions(b) {
    if (!ctx.writable) return '—';
    const msg = notice();
    const parts = [];
    if (b.status !== 'success') {
      const tokenId = `tok-${b.id}`;
      const input = h('input', { id: tokenId, type: 'text', autocomplete: 'off', spellcheck: 'false', maxlength: '512', 'aria-describedby': `${tokenId}-msg` });
      const validate = h('button', { type: 'submit' }, 'Validate');
      const f = h('form', { class: 'inline-form', novalidate: true },
        h('label', { for: tokenId }, 'Token from the challenge file'), input, validate);
      f.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        msg.clear();
        if (!input.value.trim()) {
          msg.error('ownership_challenge: required');
          input.setAttribute('aria-invalid', 'true');
          input.focus();
          return;
        }
        validate.disabled = true;
        try {
          await ctx.api.validateBucket(b.destination_conf, input.value);
          ctx.announce('Bucket validated');
          await load();
        } catch (e) {
          if (ctx.onAuthLost(e)) return;
          msg.error(e.message);
          input.setAttribute('aria-invalid', 'true');
          input.focus();
        } finally {
          validate.disabled = false;
        }
      });
      parts.push(f);
    }
    const remove = h('button', { type: 'button', class: 'danger secondary' }, 'Remove');
    const confirm = h('button', { type: 'button', class: 'danger', hidden: true }, 'Confirm removal');
    const cancel = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Cancel');
    const setConfirming = (on) => {
      remove.hidden = on;
      confirm.hidden = !on;
      cancel.hidden = !on;
      (on ? confirm : remove).focus();
    };
    remove.addEventListener('click', () => setConfirming(true));
    cancel.addEventListener('click', () => setConfirming(false));
    confirm.addEventListener('click', async () => {
      confirm.disabled = true;
      try {
        await ctx.api.removeBucket(b.id);
        ctx.announce('Bucket removed');
        await load();
        (addForm?.querySelector('input') ?? ctx.main.querySelector('h1')).focus();
      } catch (e) {
        if (!ctx.onAuthLost(e)) msg.error(e.message);
        confirm.disabled = false;
      }
    });
    parts.push(h('div', { class: 'row-actions' }, remove, confirm, cancel));
    msg.el.id = `tok-${b.id}-msg`;
    parts.push(msg.el);
    return parts;
  }

  function render() {
    fill(tbody, buckets.map((b) => h('tr', { 'data-id': b.id, 'data-status': b.status },
      cell('Bucket', h('span', { class: 'mono uri' }, redactUri(b.destination_conf))),
      cell('Status', h('span', { class: `status s-${b.status}` }, STATUS_WORDS[b.status] ?? b.status)),
      cell('Challenge file', h('span', { class: 'mono' }, challengeLocation(b.destination_conf, b.filename))),
      cell('Submitted', formatTime(b.submitted)),
      cell('Validated', b.validated ? formatTime(b.validated) : '—'),
      cell('Actions', actions(b)))));
    tableEl.hidden = buckets.length === 0;
    empty.hidden = buckets.length !== 0;
  }

  async function load() {
    try {
      buckets = await ctx.api.listBuckets();
      listMsg.clear();
      render();
    } catch (e) {
      if (!ctx.onAuthLost(e)) listMsg.error(`Could not list the buckets: ${e.message}`);
    }
  }

  fill(ctx.main, h('h1', { tabindex: '-1' }, 'Buckets'),
    h('p', { class: 'lead' }, 'Full captures are written to a bucket you own. Add it, then paste the token from the challenge file the controller wrote into it.'),
    addForm, listMsg.el,
    h('section', { 'aria-labelledby': 'list-title' }, h('h2', { id: 'list-title' }, 'Your buckets'),
      h('div', { class: 'table-wrap' }, tableEl), empty));
  load();
  return { unmount() {} };
}
