// SPDX-License-Identifier: MIT
// The controller's API as the dashboard uses it: the Cloudflare envelope
// unwrapped, errors as ApiError with the API's own message, the token sent
// as "Authorization: Bearer" on every call (and nowhere else), and the
// controller's clock estimated from the Date header of its answers (times
// in the API are the controller's).

import { fieldOfMessage } from './validate.js';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status; // HTTP status; 0 = the controller was not reached
    this.code = code; // the envelope's error code, 0 if none
  }

  // The request field the message names first, or null.
  get field() {
    return fieldOfMessage(this.message);
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export class Api {
  constructor({ token, account, base = '/client/v4', fetchImpl } = {}) {
    this.token = token;
    this.account = account;
    this.base = base;
    this.fetch = fetchImpl ?? ((...a) => globalThis.fetch(...a));
    this.offsets = []; // recent estimates of controller clock − ours, ms
  }

  // Now on the controller's clock (ms since the epoch).
  now() {
    return Date.now() + (this.offsets.length ? median(this.offsets) : 0);
  }

  noteDate(res, t0, t1) {
    const d = Date.parse(res.headers.get('Date') ?? '');
    if (Number.isNaN(d)) return;
    // The header has whole seconds: its middle is the best guess.
    this.offsets.push(d + 500 - (t0 + t1) / 2);
    if (this.offsets.length > 7) this.offsets.shift();
  }

  accountPath(rest) {
    return `${this.base}/accounts/${encodeURIComponent(this.account)}${rest}`;
  }

  async send(method, path, body) {
    const headers = { Accept: 'application/json', Authorization: `Bearer ${this.token}` };
    const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const t0 = Date.now();
    let res;
    try {
      res = await this.fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 0, `cannot reach the controller: ${e?.message ?? e}`);
    }
    this.noteDate(res, t0, Date.now());
    return res;
  }

  static async failure(res) {
    let code = 0;
    let message = `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`;
    try {
      const j = await res.json();
      const e = Array.isArray(j?.errors) ? j.errors[0] : null;
      if (e && typeof e.message === 'string') {
        message = e.message;
        code = typeof e.code === 'number' ? e.code : 0;
      }
    } catch {
      // not JSON: the status says it
    }
    return new ApiError(res.status, code, message);
  }

  // One JSON call: {result, info, text} on success, else throws ApiError.
  // With previousText: an answer of exactly that text is {unchanged: true}
  // (not parsed again).
  async call(method, path, body, previousText) {
    const res = await this.send(method, path, body);
    if (res.status === 204) return { result: null, info: null };
    if (!res.ok) throw await Api.failure(res);
    const text = await res.text();
    if (previousText !== undefined && text === previousText) return { unchanged: true, text };
    let j;
    try {
      j = JSON.parse(text);
    } catch {
      throw new ApiError(res.status, 0, 'the controller sent an answer that is not JSON');
    }
    if (!j || j.success !== true) {
      const e = Array.isArray(j?.errors) ? j.errors[0] : null;
      throw new ApiError(res.status, e?.code ?? 0, e?.message ?? 'the request failed');
    }
    return { result: j.result, info: j.result_info ?? null, text };
  }

  // ---- the endpoints

  // Cloudflare's token check with pcapd's scope: {id, status, scope, account}.
  async verify() {
    return (await this.call('GET', this.accountPath('/tokens/verify'))).result;
  }

  // Captures, newest first. Asks for a page (page/per_page) and says what
  // came back: {captures, page, perPage, total, text} — a controller without
  // paging answers page 1 with everything it lists. With previousText (the
  // text of the last answer): {unchanged: true} when nothing changed.
  async listCaptures({ page = 1, perPage = 50, previousText } = {}) {
    const q = `?page=${encodeURIComponent(page)}&per_page=${encodeURIComponent(perPage)}`;
    const r = await this.call('GET', this.accountPath(`/pcaps${q}`), undefined, previousText);
    if (r.unchanged) return r;
    const captures = Array.isArray(r.result) ? r.result : [];
    const info = r.info;
    return {
      captures,
      page: Number.isInteger(info?.page) ? info.page : 1,
      perPage: Number.isInteger(info?.per_page) ? info.per_page : captures.length,
      total: Number.isInteger(info?.total_count) ? info.total_count : captures.length,
      text: r.text,
    };
  }

  async getCapture(id) {
    return (await this.call('GET', this.accountPath(`/pcaps/${encodeURIComponent(id)}`))).result;
  }

  async createCapture(body) {
    return (await this.call('POST', this.accountPath('/pcaps'), body)).result;
  }

  async stopCapture(id) {
    return (await this.call('PUT', this.accountPath(`/pcaps/${encodeURIComponent(id)}/stop`))).result;
  }

  // The merged file: {blob, filename}.
  async download(id) {
    const res = await this.send('GET', this.accountPath(`/pcaps/${encodeURIComponent(id)}/download`));
    if (!res.ok) throw await Api.failure(res);
    const cd = res.headers.get('Content-Disposition') ?? '';
    const m = /filename="([A-Za-z0-9._-]+)"/.exec(cd);
    return { blob: await res.blob(), filename: m ? m[1] : `pcap_${id}.pcap` };
  }

  async listBuckets() {
    const { result } = await this.call('GET', this.accountPath('/pcaps/ownership'));
    return Array.isArray(result) ? result : [];
  }

  async addBucket(uri) {
    return (await this.call('POST', this.accountPath('/pcaps/ownership'), { destination_conf: uri })).result;
  }

  async validateBucket(uri, challenge) {
    return (await this.call('POST', this.accountPath('/pcaps/ownership/validate'),
      { destination_conf: uri, ownership_challenge: challenge })).result;
  }

  async removeBucket(id) {
    await this.call('DELETE', this.accountPath(`/pcaps/ownership/${encodeURIComponent(id)}`));
  }

  async agents() {
    const { result } = await this.call('GET', this.accountPath('/pcaps/agents'));
    return Array.isArray(result) ? result : [];
  }
}
