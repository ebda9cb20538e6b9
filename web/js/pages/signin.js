// SPDX-License-Identifier: MIT
// Sign in: an account id and an API token, checked with the controller
// (GET …/accounts/{account}/tokens/verify), which also says the token's
// scope. Nothing is stored until the controller has accepted the pair.

import { Api, ApiError } from '../api.js';
import { h, field, notice } from '../dom.js';
import { checkAccount } from '../validate.js';

export function mount(ctx) {
  ctx.title('Sign in');
  const account = field({
    label: 'Account ID', name: 'account', required: true,
    hint: '32 hexadecimal digits, as pcapd token create or pcapd up printed it.',
    attrs: { autocomplete: 'off', spellcheck: 'false', inputmode: 'text', maxlength: '64' },
  });
  const token = field({
    label: 'API token', name: 'token', type: 'password', required: true,
    hint: 'Kept in this tab only (sessionStorage) and sent as Authorization: Bearer.',
    attrs: { autocomplete: 'off', spellcheck: 'false', maxlength: '512' },
  });
  const result = notice();
  const button = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'card narrow', novalidate: true, 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title', tabindex: '-1' }, 'Sign in to pcapd'),
    ctx.message ? h('p', { class: 'notice info', role: 'status' }, ctx.message) : null,
    account.wrap, token.wrap, result.el, h('div', { class: 'actions' }, button));

  account.input.addEventListener('input', () => {
    if (account.input.getAttribute('aria-invalid')) account.setError(checkAccount(account.input.value).error);
  });
  account.input.addEventListener('change', () => account.setError(checkAccount(account.input.value).error));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    result.clear();
    const acc = checkAccount(account.input.value);
    const tok = token.input.value.trim();
    account.setError(acc.error);
    token.setError(tok ? null : 'token: required');
    if (acc.error) return account.input.focus();
    if (!tok) return token.input.focus();
    button.disabled = true;
    button.textContent = 'Signing in…';
    try {
      const api = new Api({ token: tok, account: acc.value });
      const v = await api.verify();
      token.input.value = '';
      ctx.signedIn({ token: tok, account: v.account ?? acc.value, scope: v.scope === 'write' ? 'write' : 'read', id: v.id });
    } catch (e) {
      const msg = e instanceof ApiError ? e.message : String(e);
      if (e instanceof ApiError && e.status === 403 && /another account/.test(msg)) {
        account.setError(msg);
        account.input.focus();
      } else if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
        token.setError(msg);
        token.input.focus();
      } else {
        result.error(msg);
      }
      button.disabled = false;
      button.textContent = 'Sign in';
    }
  });
  ctx.main.appendChild(form);
  (account.input.value ? token.input : account.input).focus();
  return { unmount() {} };
}
