// SPDX-License-Identifier: MIT
// Building the page: every value from the API goes into the document as text
// (text nodes, textContent, attribute values), never as markup. Nothing here
// or anywhere in the dashboard parses HTML (a unit test checks the sources).

const SVG_NS = 'http://www.w3.org/2000/svg';

function append(el, child) {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) {
    for (const c of child) append(el, c);
  } else if (child instanceof Node) {
    el.appendChild(child);
  } else {
    el.appendChild(document.createTextNode(String(child)));
  }
}

function setProps(el, props) {
  for (const [k, v] of Object.entries(props ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'class') {
      el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    } else if (k === 'text') {
      el.textContent = String(v);
    } else if (k === 'value' && 'value' in el) {
      el.value = String(v);
    } else if (v === true) {
      el.setAttribute(k, '');
    } else {
      el.setAttribute(k, String(v));
    }
  }
}

// h('a', {href: '#/x', class: 'link'}, 'text', child, [more]): an HTML element.
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  append(el, children);
  return el;
}

// The same for SVG elements.
export function svg(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setProps(el, props);
  append(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// Replaces el's children.
export function fill(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

let uid = 0;
export function newId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

// A labelled control with its hint and its error line, wired for assistive
// technology (aria-describedby, aria-invalid). Returns {wrap, input, error,
// setError(msg)}.
export function field({ label, name, type = 'text', hint, control, required, attrs = {} }) {
  const id = newId(`f-${name.replace(/[^a-z0-9]/gi, '-')}`);
  const input = control ?? h('input', { type, name, ...attrs });
  input.id = id;
  if (required) input.setAttribute('aria-required', 'true');
  const hintEl = hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null;
  const error = h('p', { class: 'field-error', id: `${id}-error`, 'data-error-for': name, hidden: true });
  input.setAttribute('aria-describedby', [hintEl ? `${id}-hint` : '', `${id}-error`].filter(Boolean).join(' '));
  const wrap = h('div', { class: 'field', 'data-field': name },
    // The star sits beside the label, not in it: the control's name is the
    // label's words alone (aria-required says the rest).
    h('div', { class: 'label-row' }, h('label', { for: id }, label),
      required ? h('span', { class: 'req', 'aria-hidden': 'true' }, '*') : null),
    input, hintEl, error);
  const setError = (msg) => {
    if (msg) {
      error.textContent = msg;
      error.hidden = false;
      input.setAttribute('aria-invalid', 'true');
    } else {
      error.textContent = '';
      error.hidden = true;
      input.removeAttribute('aria-invalid');
    }
  };
  return { wrap, input, error, setError };
}

// A message line for an action's outcome: role=alert for errors, status
// for the rest. Returns {el, error(msg), info(msg), clear()}.
export function notice() {
  const el = h('p', { class: 'notice', hidden: true });
  const show = (cls, role, msg) => {
    el.setAttribute('class', `notice ${cls}`);
    el.setAttribute('role', role);
    el.textContent = msg;
    el.hidden = false;
  };
  return {
    el,
    error: (msg) => show('error', 'alert', msg),
    info: (msg) => show('info', 'status', msg),
    clear: () => {
      el.hidden = true;
      el.textContent = '';
      el.removeAttribute('role');
    },
  };
}

// A table whose rows become labelled cards on a narrow screen (each cell
// carries its column's name in data-label).
export function table(columns, caption) {
  const tbody = h('tbody');
  const el = h('table', { class: 'data' },
    caption ? h('caption', { class: 'visually-hidden' }, caption) : null,
    h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  return { el, tbody };
}

export function cell(label, ...children) {
  return h('td', { 'data-label': label }, ...children);
}
