// SPDX-License-Identifier: MIT
// The table of bad form values and the API's messages (cases/validate.json),
// shared by the unit tests of web/js/validate.js and the browser suite, which
// checks the same requests against a real controller; and where the test
// finds the dashboard's modules and the generated bounds.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '..', '..');
export const WEB = process.env.PCAPD_WEB_ROOT ?? path.join(ROOT, 'web');

// The dashboard's module `rel` (e.g. 'js/validate.js').
export function webModule(rel) {
  return import(pathToFileURL(path.join(WEB, rel)).href);
}

// js/bounds.js as the build wrote it from the C constants.
export async function loadBounds() {
  const build = process.env.PCAPD_BUILD ?? path.join(ROOT, 'build');
  const file = process.env.PCAPD_WEB_BOUNDS ?? path.join(build, 'src', 'web', 'bounds.js');
  return (await import(pathToFileURL(file).href)).BOUNDS;
}

export const table = JSON.parse(fs.readFileSync(path.join(here, 'cases', 'validate.json'), 'utf8'));

function expand(v) {
  if (typeof v === 'string') return v;
  if (v && typeof v.repeat === 'string') return v.repeat.repeat(v.times);
  if (v && typeof v.join === 'string') {
    const out = [];
    for (let i = v.from; i <= v.to; i++) out.push(String(i));
    return out.join(v.join);
  }
  throw new Error(`cases: bad value ${JSON.stringify(v)}`);
}

// The form of a case at nowMs (controller clock): {form, message} with
// {value} in the message replaced.
export function caseForm(c, nowMs) {
  const form = { ...table.base[c.type] };
  let value = '';
  for (const [k, v] of Object.entries(c.set)) {
    if (k === 'offset_hours') {
      value = new Date(nowMs + v * 3600e3).toISOString().replace(/\.\d{3}Z$/, 'Z');
      form.offset_time = value;
    } else {
      form[k] = expand(v);
      value = form[k];
    }
  }
  return { form, message: c.message?.replace('{value}', value) };
}

// The form's field that a case changes, as the API names it.
export function caseField(c) {
  const k = Object.keys(c.set)[0];
  if (k === 'offset_hours') return 'offset_time';
  return ['source_address', 'destination_address', 'source_port', 'destination_port', 'protocol', 'bpf'].includes(k)
    ? `filter_v1.${k}` : k;
}
