// SPDX-License-Identifier: MIT
// Packets over time for a running capture: the capture page samples the
// packet count at each refresh (Series) and draws it as an SVG line (the
// geometry here is pure; the page makes the elements).

// Samples of one capture: [{t: ms, v: packets}], at most `max` kept (the
// oldest dropped), a sample only when time moved forward.
export class Series {
  constructor(max = 600) {
    this.max = max;
    this.points = [];
  }

  add(t, v) {
    if (typeof t !== 'number' || typeof v !== 'number' || !Number.isFinite(t) || !Number.isFinite(v)) return;
    const last = this.points[this.points.length - 1];
    if (last && t <= last.t) return;
    this.points.push({ t, v });
    if (this.points.length > this.max) this.points.shift();
  }
}

// A round scale maximum at or above v: 1, 2, 5 × 10^k.
export function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// The drawing of points in a width × height box with a margin for labels:
// {d: the path's "M x y L x y…" (empty with fewer than 2 points), yMax,
// seconds: the time span, last: the newest value}.
export function geometry(points, width, height, margin = { left: 48, right: 8, top: 8, bottom: 20 }) {
  const pts = Array.isArray(points) ? points : [];
  const last = pts.length ? pts[pts.length - 1].v : 0;
  const yMax = niceMax(Math.max(0, ...pts.map((p) => p.v)));
  if (pts.length < 2) return { d: '', yMax, seconds: 0, last };
  const t0 = pts[0].t;
  const span = Math.max(1, pts[pts.length - 1].t - t0);
  const w = width - margin.left - margin.right;
  const h = height - margin.top - margin.bottom;
  const d = pts.map((p, i) => {
    const x = margin.left + ((p.t - t0) / span) * w;
    const y = margin.top + h - (p.v / yMax) * h;
    return `${i ? 'L' : 'M'}${x.toFixed(1)} ${y.toFixed(1)}`;
  }).join(' ');
  return { d, yMax, seconds: span / 1000, last };
}
