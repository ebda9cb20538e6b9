// SPDX-License-Identifier: MIT
// The signed-in session: token, account id and the token's scope, in
// sessionStorage only (gone when the tab closes; never a cookie, never in a
// URL). The scope only decides which buttons are shown: the controller
// checks it on every request.

const KEY = 'pcapd.session';

export function loadSession(storage = globalThis.sessionStorage) {
  try {
    const s = JSON.parse(storage.getItem(KEY) ?? 'null');
    if (s && typeof s.token === 'string' && typeof s.account === 'string') return s;
  } catch {
    // a damaged entry is no session
  }
  return null;
}

export function saveSession(s, storage = globalThis.sessionStorage) {
  storage.setItem(KEY, JSON.stringify({ token: s.token, account: s.account, scope: s.scope, id: s.id }));
}

export function clearSession(storage = globalThis.sessionStorage) {
  storage.removeItem(KEY);
}

export const canWrite = (s) => s?.scope === 'write';
