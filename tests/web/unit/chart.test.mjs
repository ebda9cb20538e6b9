// SPDX-License-Identifier: MIT
// web/js/chart.js: the samples kept and the line's geometry.
import assert from 'node:assert/strict';
import test from 'node:test';

import { webModule } from '../cases.mjs';

const C = await webModule('js/chart.js');

test('Series keeps forward-moving samples, at most max', () => {
  const s = new C.Series(3);
  s.add(1000, 1);
  s.add(1000, 5); // same time: ignored
  s.add(900, 5); // back in time: ignored
  s.add(2000, NaN); // not a number: ignored
  s.add(2000, 2);
  s.add(3000, 4);
  s.add(4000, 8);
  assert.deepEqual(s.points, [{ t: 2000, v: 2 }, { t: 3000, v: 4 }, { t: 4000, v: 8 }]);
});

test('niceMax rounds up to 1, 2, 5 × 10^k', () => {
  assert.deepEqual([0, 1, 3, 7, 10, 11, 150, 999, 1001].map(C.niceMax), [1, 1, 5, 10, 10, 20, 200, 1000, 2000]);
});

test('geometry maps time to x and packets to y inside the margins', () => {
  const m = { left: 10, right: 10, top: 10, bottom: 10 };
  assert.equal(C.geometry([{ t: 0, v: 3 }], 120, 120, m).d, '');
  const g = C.geometry([{ t: 0, v: 0 }, { t: 5000, v: 5 }, { t: 10000, v: 10 }], 120, 120, m);
  assert.equal(g.d, 'M10.0 110.0 L60.0 60.0 L110.0 10.0');
  assert.equal(g.yMax, 10);
  assert.equal(g.seconds, 10);
  assert.equal(g.last, 10);
});
