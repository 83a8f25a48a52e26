import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rowsToColumns } from '../../src/protocol';
import { band, decimateMinMax, Ema, RunSeries, smooth, SmoothCache } from '../../webview/dashboard/data';

const cols = (from: number, to: number, f = (s: number) => s * 0.1) => {
  const rows = [];
  for (let s = from; s <= to; s++) rows.push({ step: s, 'reward/mean': f(s), 'reward/std': 0.1 });
  return rowsToColumns(rows);
};

test('RunSeries appends columns, pads keys that appear later, and truncates re-done steps', () => {
  const r = new RunSeries();
  r.append(cols(1, 5));
  r.append({ step: [6], values: { 'reward/mean': [0.6], kl: [0.01] } });
  assert.equal(r.length, 6);
  assert.deepEqual(r.get('kl'), [null, null, null, null, null, 0.01]);
  assert.deepEqual(r.get('reward/std')?.length, 6);
  // A resumed run re-sends steps 4..: rows at and after step 4 are replaced.
  r.append({ step: [4, 5], values: { 'reward/mean': [9, 9] } });
  assert.deepEqual(r.step, [1, 2, 3, 4, 5]);
  assert.deepEqual(r.get('reward/mean'), [0.1, 0.2, 0.30000000000000004, 9, 9]);
  assert.equal(r.dirtyFrom, 0);
  r.markClean();
  r.append({ step: [6], values: { 'reward/mean': [1] } });
  assert.equal(r.dirtyFrom, 5);
  r.append(cols(1, 2), true);
  assert.deepEqual(r.step, [1, 2]);
});

test('EMA smoothing is debiased, skips nulls and extends incrementally to the same result', () => {
  assert.deepEqual(smooth([5, 5, 5], 0.9).map((v) => Number(v?.toFixed(9))), [5, 5, 5]);
  assert.deepEqual(smooth([1, null, 3], 0), [1, null, 3]);
  const ys = Array.from({ length: 500 }, (_, i) => Math.sin(i / 10) + (i % 7) * 0.1);
  const full = smooth(ys, 0.8);
  const e = new Ema(0.8);
  for (let n = 50; n <= 500; n += 50) e.extend(ys.slice(0, n));
  assert.deepEqual(e.out, full);
  // A rewrite from index 100 recomputes from there.
  const ys2 = ys.map((y, i) => (i >= 100 ? y + 1 : y));
  e.extend(ys2, 100);
  assert.deepEqual(e.out, smooth(ys2, 0.8));
});

test('SmoothCache follows appends and replacements', () => {
  const r = new RunSeries();
  const c = new SmoothCache(0.5);
  r.append(cols(1, 10));
  assert.deepEqual(c.get('a', 'reward/mean', r), smooth(r.get('reward/mean')!, 0.5));
  r.markClean();
  r.append(cols(5, 12, (s) => -s));
  assert.deepEqual(c.get('a', 'reward/mean', r), smooth(r.get('reward/mean')!, 0.5));
  c.setWeight(0.9);
  assert.deepEqual(c.get('a', 'reward/mean', r), smooth(r.get('reward/mean')!, 0.9));
});

test('min/max decimation bounds the point count and keeps every bucket extreme', () => {
  const n = 100_000;
  const xs = Array.from({ length: n }, (_, i) => i + 1);
  const ys = xs.map((x) => Math.sin(x / 1000));
  ys[54_321] = 50; // a spike
  ys[77_777] = -50;
  ys[10] = null as unknown as number;
  const pts = decimateMinMax(xs, ys, 400);
  assert.ok(pts.length <= 1600, `${pts.length} points`);
  assert.ok(pts.length >= 400);
  assert.ok(pts.some((p) => p.y === 50) && pts.some((p) => p.y === -50));
  for (let i = 1; i < pts.length; i++) assert.ok(pts[i].x > pts[i - 1].x, 'x strictly increasing');
  assert.equal(pts[0].x, 1);
  assert.equal(pts[pts.length - 1].x, n);
  // Small series are passed through (minus nulls).
  assert.deepEqual(decimateMinMax([1, 2, 3], [1, null, 3], 400), [{ x: 1, y: 1 }, { x: 3, y: 3 }]);
});

test('the ±std band envelopes mean ± std', () => {
  const xs = Array.from({ length: 10_000 }, (_, i) => i);
  const mean = xs.map((x) => x % 10);
  const std = xs.map(() => 1);
  const b = band(xs, mean, std, 100);
  assert.equal(b.upper.length, 100);
  assert.ok(b.upper.every((p) => p.y === 10));
  assert.ok(b.lower.every((p) => p.y === -1));
  const small = band([1, 2], [0.5, null], [0.1, 0.1], 100);
  assert.deepEqual(small.upper, [{ x: 1, y: 0.6 }]);
});
