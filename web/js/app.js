// SPDX-License-Identifier: MIT
// The dashboard: sign-in, the header, and a router over the location hash
// (#/captures, #/captures/ID, #/start, #/buckets, #/agents), so that the
// controller serves one page and every view has an address to bookmark.

import { Api, ApiError } from './api.js';
import { h, fill } from './dom.js';
import { loadSession, saveSession, clearSession, canWrite } from './session.js';
import * as signin from './pages/signin.js';
import * as captures from './pages/captures.js';
import * as capture from './pages/capture.js';
import * as start from './pages/start.js';
import * as buckets from './pages/buckets.js';
import * as agents from './pages/agents.js';

const ROUTES = [
  { re: /^#?\/?$/, page: captures, nav: 'captures' },
  { re: /^#\/captures\/?$/, page: captures, nav: 'captures' },
  { re: /^#\/captures\/([0-9a-fA-F]{32})$/, page: capture, nav: 'captures' },
  { re: /^#\/start$/, page: start, nav: 'start' },
  { re: /^#\/buckets$/, page: buckets, nav: 'buckets' },
  { re: /^#\/agents$/, page: agents, nav: 'agents' },
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const whoText = document.getElementById('who-text');
const live = document.getElementById('live');

let current = null; // {unmount}
let session = loadSession();
let api = session ? new Api({ token: session.token, account: session.account }) : null;

function announce(msg) {
  live.textContent = '';
  // A new text node each time, so a repeated message is read again.
  setTimeout(() => { live.textContent = msg; }, 30);
}

function signOut(reason) {
  clearSession();
  session = null;
  api = null;
  route(reason);
}

// An error from any page: a refused token ends the session; the rest is the
// page's to show.
function onAuthLost(err) {
  if (err instanceof ApiError && err.status === 401) {
    signOut(`Signed out: ${err.message}`);
    return true;
  }
  return false;
}

function header() {
  const signedIn = !!session;
  nav.hidden = !signedIn;
  who.hidden = !signedIn;
  if (!signedIn) return;
  for (const a of nav.querySelectorAll('[data-write]')) a.hidden = !canWrite(session);
  fill(whoText, `Account ${session.account}`, ' · ',
    h('span', { class: canWrite(session) ? 'scope' : 'scope ro' }, canWrite(session) ? 'read and write' : 'read-only'));
}

function route(message) {
  if (current) {
    current.unmount?.();
    current = null;
  }
  header();
  fill(main);
  const ctx = {
    api,
    session,
    writable: canWrite(session),
    main,
    announce,
    onAuthLost,
    go: (hash) => {
      if (location.hash === hash) route();
      else location.hash = hash;
    },
    title: (t) => { document.title = `${t} · pcapd`; },
  };
  if (!session) {
    current = signin.mount({
      ...ctx,
      message,
      signedIn: (s) => {
        saveSession(s);
        session = s;
        api = new Api({ token: s.token, account: s.account });
        route();
      },
    });
    return;
  }
  const hash = location.hash;
  let match = null;
  const r = ROUTES.find((x) => (match = x.re.exec(hash)));
  for (const a of nav.querySelectorAll('a')) {
    if (r && a.dataset.nav === r.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!r) {
    ctx.title('Not found');
    fill(main, h('h1', { tabindex: '-1' }, 'Not found'),
      h('p', null, 'There is no page at this address. ', h('a', { href: '#/captures' }, 'Go to Captures')));
    main.querySelector('h1').focus();
    return;
  }
  current = r.page.mount(ctx, match.slice(1));
  // Keyboard and screen-reader users land on the new page's heading.
  main.querySelector('h1')?.focus({ preventScroll: false });
}

document.getElementById('signout').addEventListener('click', () => signOut('Signed out.'));
window.addEventListener('hashchange', () => route());
route();
