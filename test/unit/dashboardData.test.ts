import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rowsToColumns } from '../../src/dashboard/columns';
import { bandEdges, CHARTS, decimateMinMax, Decimator, DrawCache, Ema, EVAL_K, RunSeries, smooth, SmoothCache } from '../../webview/dashboard/data';

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

test('incremental decimation of a growing run equals decimating it from scratch', () => {
  const xs: number[] = [];
  const ys: (number | null)[] = [];
  const d = new Decimator();
  let seed = 7;
  const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  for (let step = 1; step <= 30_000; step++) {
    xs.push(step);
    ys.push(step % 997 === 0 ? null : Math.sin(step / 300) + rnd());
    if (step % 1234 === 0 || step === 30_000) {
      const inc = d.update(xs, ys, 300, xs.length - 1);
      assert.deepEqual(inc, decimateMinMax(xs, ys, 300), `at step ${step}`);
    }
  }
  // A rewrite of old rows (resumed run) is noticed through dirtyFrom.
  ys[100] = 99;
  assert.ok(d.update(xs, ys, 300, 100).some((p) => p.y === 99));
});

test('the ±std band edges follow appended rows', () => {
  const e = bandEdges([1, 2, null], [0.5, 0.5, 0.5]);
  assert.deepEqual(e, { upper: [1.5, 2.5, null], lower: [0.5, 1.5, null] });
  bandEdges([1, 2, 3, 4], [0.5, 0.5, 0.5, 1], e, 2);
  assert.deepEqual(e.upper, [1.5, 2.5, 3.5, 5]);
  const r = new RunSeries();
  r.append(cols(1, 5000));
  const c = new DrawCache(0.5);
  const b = c.band('a', r, 'reward/mean', 'reward/std', 100)!;
  assert.ok(b.upper.length > 0 && b.upper.length <= 400);
  assert.ok(b.upper.every((p, i) => Math.abs(p.y - (p.x * 0.1 + 0.1)) < 1e-9 && p.x === b.lower[i].x));
  r.markClean();
  r.append(cols(5001, 5001, () => 1000));
  assert.equal(c.band('a', r, 'reward/mean', 'reward/std', 100)!.upper.at(-1)!.y, 1000.1);
  assert.equal(c.line('a', r, 'reward/mean', 100, false).at(-1)!.y, 1000);
});

test('evaluation series are sparse (points, never smoothed) in every chart; maj@k and pass@k share the colour of their k', () => {
  const evalSeries = CHARTS.flatMap((c) => c.series.filter((s) => s.key.startsWith('eval/')).map((s) => ({ chart: c, s })));
  assert.ok(evalSeries.some(({ chart }) => chart.id === 'accuracy'), 'the Accuracy chart has the eval line');
  for (const { chart, s } of evalSeries) assert.ok(chart.sparse || s.sparse, `${chart.id}: ${s.key} would be smoothed`);
  const held = CHARTS.find((c) => c.id === 'eval')!.series;
  const colour = (key: string) => held.find((s) => s.key === key)?.color;
  for (const k of EVAL_K.filter((k) => k > 1)) {
    assert.equal(colour(`eval/pass@${k}`), colour(`eval/maj@${k}`), `k=${k}`);
    assert.ok(held.find((s) => s.key === `eval/pass@${k}`)?.dashed && !held.find((s) => s.key === `eval/maj@${k}`)?.dashed);
  }
  assert.equal(new Set(EVAL_K.map((k) => colour(`eval/maj@${k}`))).size, EVAL_K.length, 'each k its own colour');
  assert.ok(!EVAL_K.map((k) => colour(`eval/maj@${k}`)).includes(colour('eval/accuracy')), 'greedy apart');
});
