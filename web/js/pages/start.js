// SPDX-License-Identifier: MIT
// Start a capture: a wizard of three steps — the type (Full or Sample), its
// limits and target, an optional filter — then Start. Each field is checked
// as the user types with the API's bounds and messages (validate.js); the
// controller checks the request again and its answer is shown next to the
// field it names.

import { BOUNDS } from '../bounds.js';
import { h, fill, field, notice, newId } from '../dom.js';
import { formatCount, redactUri } from '../format.js';
import { CAPTURE_FIELDS, checkCapture, checkField, localToIso } from '../validate.js';

const STEPS = ['Type', 'Limits and target', 'Filter'];

// Which step holds a control (by the API's field name).
function stepOf(name) {
  if (name === 'type' || name === 'system') return 0;
  if (name.startsWith('filter_v1')) return 2;
  return 1;
}

export function mount(ctx) {
  ctx.title('Start a capture');
  if (!ctx.writable) {
    fill(ctx.main, h('h1', { tabindex: '-1' }, 'Start a capture'),
      h('p', { class: 'notice info', role: 'status' },
        'This token is read-only (scope read): it can list, look at and download captures, not start them. ',
        'Sign in with a write token to start one.'));
    return { unmount() {} };
  }

  let step = 0;
  let busy = false;
  const controls = {}; // API field name -> {wrap, input, setError}
  const touched = new Set();

  // ---- step 1: the type
  const typeName = newId('type');
  const radio = (value, label, hint) => {
    const id = newId(`type-${value}`);
    return h('div', { class: 'choice' },
      h('input', { type: 'radio', name: typeName, id, value, checked: value === 'full' }),
      h('label', { for: id }, h('strong', null, label), h('span', { class: 'hint' }, hint)));
  };
  const typeSet = h('fieldset', { class: 'choices' },
    h('legend', null, 'What to capture'),
    radio('full', 'Full', 'Every matching packet on the chosen agents, from now until a limit, written to your bucket.'),
    radio('simple', 'Sample', 'Packets from the sampled history every agent keeps (1 in N over the last 24 hours), answered at once.'));
  const typeOf = () => typeSet.querySelector('input:checked')?.value ?? 'full';

  // ---- step 2: limits and target
  const numberAttrs = { inputmode: 'numeric', autocomplete: 'off', maxlength: '24' };
  const add = (name, opts) => {
    const f = field({ name, ...opts });
    controls[name] = f;
    return f;
  };
  const timeLimit = add('time_limit', {
    label: 'Time limit (seconds)', required: true, attrs: { ...numberAttrs, value: '60' },
    hint: `${BOUNDS.time_limit.min} to ${BOUNDS.time_limit.max}. For a sample: how far back from its end the window reaches.`,
  });
  const packetLimit = add('packet_limit', {
    label: 'Packet limit', attrs: numberAttrs,
    hint: `${BOUNDS.packet_limit.min} to ${formatCount(BOUNDS.packet_limit.max)}, on each agent. Empty: none (a sample needs one).`,
  });
  const byteLimit = add('byte_limit', {
    label: 'Byte limit', attrs: numberAttrs,
    hint: `${BOUNDS.byte_limit.min} to ${formatCount(BOUNDS.byte_limit.max)} bytes of packets, on each agent. Empty: none.`,
  });
  const coloList = h('datalist', { id: newId('colos') });
  const colo = add('colo_name', {
    label: 'Colo or agent', required: true,
    attrs: { autocomplete: 'off', spellcheck: 'false', list: coloList.id, maxlength: '128' },
    hint: 'Every online agent whose colo or name this is captures.',
  });
  const bucketSelect = h('select', { name: 'destination_conf' }, h('option', { value: '' }, 'Loading buckets…'));
  const bucket = add('destination_conf', {
    label: 'Bucket', required: true, control: bucketSelect,
    hint: 'Only validated buckets can receive captures.',
  });
  const bucketHelp = h('p', { class: 'hint', hidden: true },
    'No validated bucket yet: ', h('a', { href: '#/buckets' }, 'add one on the Buckets page'), '.');
  bucket.wrap.appendChild(bucketHelp);
  const offset = add('offset_time', {
    label: 'Window ends at', type: 'datetime-local', attrs: { step: '1' },
    hint: 'Your local time; empty: now. Within the last 24 hours.',
  });

  // ---- step 3: the filter
  const filterAttrs = { autocomplete: 'off', spellcheck: 'false', maxlength: '16384' };
  const src = add('filter_v1.source_address', { label: 'Source addresses', attrs: filterAttrs, hint: '192.0.2.1, 192.0.2.0/24, 2001:db8::/32, a range a-b, or a ";" list.' });
  const dst = add('filter_v1.destination_address', { label: 'Destination addresses', attrs: filterAttrs });
  const sport = add('filter_v1.source_port', { label: 'Source ports', attrs: filterAttrs, hint: '443, 8000-8080 or "80;443".' });
  const dport = add('filter_v1.destination_port', { label: 'Destination ports', attrs: filterAttrs });
  const proto = add('filter_v1.protocol', { label: 'Protocol', attrs: { ...filterAttrs, list: 'protocols' }, hint: 'A number 0..255 or a name: tcp, udp, icmp, icmp6, sctp, gre, …' });
  const innerBox = h('input', { type: 'checkbox', name: 'inner', id: newId('inner') });
  const inner = {
    wrap: h('div', { class: 'field check', 'data-field': 'filter_v1.inner' }, innerBox,
      h('label', { for: innerBox.id }, 'Also inside tunnels'),
      h('p', { class: 'hint' }, 'The address, port and protocol fields also match the packet inside a VXLAN, GENEVE or GRE tunnel.')),
    input: innerBox,
    setError: () => {},
  };
  controls['filter_v1.inner'] = inner;
  const protoList = h('datalist', { id: 'protocols' }, Object.keys(BOUNDS.protocol_names).map((n) => h('option', { value: n })));
  const bpf = add('filter_v1.bpf', {
    label: 'pcap-filter expression', control: h('textarea', { name: 'bpf', rows: '2', ...filterAttrs }),
    hint: 'As tcpdump takes it (e.g. "vlan 100 and tcp[tcpflags] & tcp-syn != 0"), ANDed with the fields above; checked by the controller.',
  });
  const filterMsg = notice();

  const form = () => ({
    type: typeOf(),
    time_limit: timeLimit.input.value,
    packet_limit: packetLimit.input.value,
    byte_limit: byteLimit.input.value,
    colo_name: colo.input.value,
    destination_conf: bucketSelect.value,
    offset_time: localToIso(offset.input.value),
    source_address: src.input.value,
    destination_address: dst.input.value,
    source_port: sport.input.value,
    destination_port: dport.input.value,
    protocol: proto.input.value,
    inner: innerBox.checked,
    bpf: bpf.input.value,
  });

  // Which controls a type uses.
  const usedBy = (name, type) => {
    if (['byte_limit', 'colo_name', 'destination_conf'].includes(name)) return type === 'full';
    if (name === 'offset_time') return type === 'simple';
    return true;
  };

  function showField(name) {
    const r = checkField(name, form(), BOUNDS, ctx.api.now());
    controls[name].setError(touched.has(name) ? r.error : null);
    return r.error;
  }

  for (const [name, f] of Object.entries(controls)) {
    const onInput = () => {
      touched.add(name);
      showField(name);
    };
    f.input.addEventListener('input', onInput);
    f.input.addEventListener('change', onInput);
  }

  const stepsNav = h('ol', { class: 'steps' }, STEPS.map((s, i) => h('li', { 'data-step': String(i) }, `${i + 1}. ${s}`)));
  const sections = [
    h('section', { class: 'step', 'aria-labelledby': 'step-0' }, h('h2', { id: 'step-0', tabindex: '-1' }, 'Type'), typeSet),
    h('section', { class: 'step', 'aria-labelledby': 'step-1' }, h('h2', { id: 'step-1', tabindex: '-1' }, 'Limits and target'),
      h('div', { class: 'grid' }, timeLimit.wrap, packetLimit.wrap, byteLimit.wrap, colo.wrap, bucket.wrap, offset.wrap), coloList),
    h('section', { class: 'step', 'aria-labelledby': 'step-2' }, h('h2', { id: 'step-2', tabindex: '-1' }, 'Filter (optional)'),
      h('div', { class: 'grid' }, src.wrap, dst.wrap, sport.wrap, dport.wrap, proto.wrap), inner.wrap, bpf.wrap, protoList, filterMsg.el),
  ];
  const back = h('button', { type: 'button', class: 'secondary' }, 'Back');
  const nextBtn = h('button', { type: 'button' }, 'Next');
  const startBtn = h('button', { type: 'submit' }, 'Start');
  const result = notice();
  const preview = h('pre', { class: 'preview' });
  const formEl = h('form', { class: 'wizard', novalidate: true, 'aria-labelledby': 'start-title' },
    stepsNav, ...sections,
    h('details', { class: 'request' }, h('summary', null, 'The request this sends'), preview),
    result.el,
    h('div', { class: 'actions' }, back, nextBtn, startBtn));

  function showStep(n, focus = true) {
    step = n;
    const type = typeOf();
    sections.forEach((s, i) => { s.hidden = i !== n; });
    for (const li of stepsNav.children) {
      if (Number(li.dataset.step) === n) li.setAttribute('aria-current', 'step');
      else li.removeAttribute('aria-current');
    }
    for (const [name, f] of Object.entries(controls)) f.wrap.hidden = !usedBy(name, type);
    packetLimit.input.setAttribute('aria-required', type === 'simple' ? 'true' : 'false');
    back.hidden = n === 0;
    nextBtn.hidden = n === STEPS.length - 1;
    startBtn.hidden = n !== STEPS.length - 1;
    preview.textContent = JSON.stringify(checkCapture(form(), BOUNDS, ctx.api.now()).body, null, 2);
    if (focus) document.getElementById(`step-${n}`)?.focus();
  }

  // Checks the controls of steps [0..upto]; shows their errors; returns the
  // first failing control's name (in the controller's order) or null.
  function checkUpTo(upto) {
    const type = typeOf();
    let first = null;
    for (const name of CAPTURE_FIELDS) {
      if (stepOf(name) > upto || !usedBy(name, type)) continue;
      touched.add(name);
      if (showField(name) && !first) first = name;
    }
    return first;
  }

  function focusField(name) {
    showStep(stepOf(name), false);
    controls[name]?.input.focus();
  }

  back.addEventListener('click', () => showStep(Math.max(0, step - 1)));
  nextBtn.addEventListener('click', () => {
    const bad = checkUpTo(step);
    if (bad && stepOf(bad) <= step) {
      focusField(bad);
      return;
    }
    showStep(step + 1);
  });
  typeSet.addEventListener('change', () => {
    for (const name of Object.keys(controls)) showField(name);
  });
  formEl.addEventListener('input', () => {
    preview.textContent = JSON.stringify(checkCapture(form(), BOUNDS, ctx.api.now()).body, null, 2);
  });

  formEl.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (step !== STEPS.length - 1) {
      nextBtn.click();
      return;
    }
    if (busy) return;
    result.clear();
    filterMsg.clear();
    const bad = checkUpTo(STEPS.length - 1);
    if (bad) {
      focusField(bad);
      return;
    }
    const { body, errors } = checkCapture(form(), BOUNDS, ctx.api.now());
    if (errors.filter_v1) {
      filterMsg.error(errors.filter_v1);
      return;
    }
    busy = true;
    startBtn.disabled = true;
    startBtn.textContent = 'Starting…';
    try {
      const c = await ctx.api.createCapture(body);
      ctx.announce('Capture started');
      ctx.go(`#/captures/${c.id}`);
    } catch (e) {
      if (ctx.onAuthLost(e)) return;
      const name = e.field === 'colo' ? 'colo_name' : e.field;
      if (name && controls[name] && usedBy(name, typeOf())) {
        showStep(stepOf(name), false);
        controls[name].setError(e.message);
        controls[name].input.focus();
      } else if (name === 'filter_v1') {
        showStep(2, false);
        filterMsg.error(e.message);
      } else {
        result.error(e.message);
      }
    } finally {
      busy = false;
      startBtn.disabled = false;
      startBtn.textContent = 'Start';
    }
  });

  fill(ctx.main, h('h1', { id: 'start-title', tabindex: '-1' }, 'Start a capture'), formEl);
  showStep(0, false);

  // What the target and bucket controls offer: online agents, validated buckets.
  ctx.api.agents().then((list) => {
    const names = new Set();
    for (const a of list) {
      if (!a.online) continue;
      if (a.colo) names.add(a.colo);
      names.add(a.name);
    }
    fill(coloList, [...names].sort().map((n) => h('option', { value: n })));
  }).catch((e) => ctx.onAuthLost(e));
  ctx.api.listBuckets().then((list) => {
    const ok = list.filter((b) => b.status === 'success');
    fill(bucketSelect, h('option', { value: '' }, ok.length ? 'Choose a bucket' : 'No validated bucket'),
      ok.map((b) => h('option', { value: b.destination_conf }, redactUri(b.destination_conf))));
    if (ok.length === 1) bucketSelect.value = ok[0].destination_conf;
    bucketHelp.hidden = ok.length > 0;
  }).catch((e) => {
    if (!ctx.onAuthLost(e)) bucket.setError(`Could not list the buckets: ${e.message}`);
  });
  return { unmount() {} };
}
