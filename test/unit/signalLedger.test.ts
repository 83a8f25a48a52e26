import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rowsToColumns } from '../../src/dashboard/columns';
import { CHARTS, RunSeries, yBounds } from '../../webview/dashboard/data';
import { breakdownAt, breakdownOf, lastLedgerRow, LEDGER_CATEGORIES, LedgerStack, nearestLedgerRow, STACK_ORDER, summarize, UNKNOWN_CATEGORY } from '../../webview/dashboard/ledger';
import type { MetricsRow } from '../../src/shared/records';

/** A step's ledger: 1,000 tokens split over the categories (they sum to ledger/tokens). */
function ledgerRow(step: number, parts: Partial<Record<string, number>> = {}): MetricsRow {
  const base: Record<string, number> = {
    'ledger/filtered': 0, 'ledger/truncated_masked': 20, 'ledger/no_signal_correct': 190, 'ledger/no_signal_wrong': 620,
    'ledger/no_signal_other': 0, 'ledger/masked_other': 0, 'ledger/clipped_low': 10, 'ledger/clipped_high': 0, 'ledger/effective': 160,
    ...parts,
  } as Record<string, number>;
  const tokens = Object.values(base).reduce((a, b) => a + b, 0);
  return {
    step, 'ledger/tokens': tokens, ...base,
    'groups/mixed': 2, 'groups/all_correct': 2, 'groups/all_wrong': 6, 'groups/no_signal_other': 0, 'groups/filtered': 0, 'groups/sampled': 10,
    'grad_share/mixed': 0.9, 'grad_share/all_correct': 0.04, 'grad_share/all_wrong': 0.06, 'grad_share/no_signal_other': 0,
    'grad_share/len_0_25': 0.4, 'grad_share/len_25_50': 0.3, 'grad_share/len_50_75': 0.2, 'grad_share/len_75_100': 0.1,
  } as MetricsRow;
}
const series = (rows: MetricsRow[]) => {
  const r = new RunSeries();
  r.append(rowsToColumns(rows));
  return r;
};
const close = (a: number, b: number, eps = 1e-9) => assert.ok(Math.abs(a - b) <= eps, `${a} ≠ ${b}`);

test('a step\'s breakdown: counts, shares of ledger/tokens that sum to 1, groups and gradient shares', () => {
  const b = breakdownAt(series([ledgerRow(3)]), 0);
  assert.equal(b.step, 3);
  assert.equal(b.tokens, 1000);
  assert.equal(b.unknown, null);
  assert.deepEqual(b.categories.map((p) => p.key), LEDGER_CATEGORIES.map((c) => c.key));
  close(b.categories.reduce((s, p) => s + p.share!, 0), 1);
  assert.equal(b.categories.find((p) => p.key === 'ledger/no_signal_wrong')!.share, 0.62);
  assert.equal(b.groups.find((p) => p.key === 'groups/all_wrong')!.share, 0.6);
  assert.equal(b.sampled, 10);
  assert.equal(b.gradByKind[0].share, 0.9);
  assert.equal(b.gradByLength.length, 4);
});

test('absent is unknown, never 0: categories a run does not record, and steps without a ledger', () => {
  // an imported TRL step: tokens, effective and the all-equal groups are known, the rest is not
  const trl = { step: 5, 'ledger/tokens': 1000, 'ledger/effective': 400, 'ledger/no_signal_wrong': 300 } as MetricsRow;
  const b = breakdownOf(5, (k) => trl[k] as number | undefined);
  const masked = b.categories.find((p) => p.key === 'ledger/truncated_masked')!;
  assert.equal(masked.value, null);
  assert.equal(masked.share, null);
  assert.equal(b.unknown!.value, 300);
  close(b.categories.reduce((s, p) => s + (p.share ?? 0), 0) + b.unknown!.share!, 1);
  assert.ok(b.groups.every((p) => p.value === null && p.share === null));
  assert.ok(b.gradByKind.every((p) => p.share === null));
  // null in a row (the trainer writes NaN as null) is unknown too
  const withNull = breakdownOf(1, (k) => (k === 'ledger/tokens' ? 10 : k === 'ledger/effective' ? null : 0));
  assert.equal(withNull.categories.at(-1)!.value, null);
  assert.equal(withNull.unknown!.value, 10);
  // an older run: no ledger at all
  const old = breakdownOf(2, () => undefined);
  assert.equal(old.tokens, null);
  assert.ok(old.categories.every((p) => p.value === null));
  assert.equal(old.unknown, null);
  assert.match(summarize(old), /not recorded/);
});

test('the one-line summary says where the signal went, in words', () => {
  const s = summarize(breakdownAt(series([ledgerRow(12)]), 0));
  assert.equal(s, "Step 12: 81% of this step's 1,000 tokens carried no signal: 62% in all-wrong groups, 19% in all-correct groups. 2% were masked; 1% were clipped; 16% carried policy gradient.");
  const trl = breakdownOf(5, (k) => ({ 'ledger/tokens': 1000, 'ledger/effective': 400 } as Record<string, number>)[k]);
  assert.match(summarize(trl), /no-signal groups are not recorded.*40% carried policy gradient.*60% are in categories not recorded/);
});

test('the stacked bands: cumulative shares ending at 1, one band per category, the same x for every band', () => {
  const run = series([ledgerRow(1), ledgerRow(2, { 'ledger/effective': 560, 'ledger/no_signal_wrong': 220 }), { step: 3 } as MetricsRow, ledgerRow(4)]);
  const st = new LedgerStack().update(run, 100)!;
  assert.equal(st.bands.length, STACK_ORDER.length);
  assert.equal(st.buckets, 3, 'the step without a ledger is a gap, not a zero');
  for (const band of st.bands) assert.deepEqual(band.map((p) => p.x), [1, 2, 4]);
  // bottom band: what carried policy gradient
  assert.equal(STACK_ORDER[0].key, 'ledger/effective');
  assert.deepEqual(st.bands[0].map((p) => p.y), [0.16, 0.56, 0.16]);
  for (const p of st.bands[STACK_ORDER.length - 1]) close(p.y, 1);
  assert.equal(st.present[STACK_ORDER.indexOf(UNKNOWN_CATEGORY)], false);
  assert.equal(st.present[STACK_ORDER.findIndex((c) => c.key === 'ledger/filtered')], false);
  assert.equal(new LedgerStack().update(series([{ step: 1, 'reward/mean': 1 } as MetricsRow]), 100), null, 'no ledger, no chart');
});

test('the stack is bucketed to the pixel budget, token-weighted, and extended incrementally', () => {
  const rows: MetricsRow[] = [];
  for (let s = 1; s <= 10_000; s++) rows.push(ledgerRow(s, s % 2 ? {} : { 'ledger/effective': 560, 'ledger/no_signal_wrong': 220 }));
  const run = series(rows);
  const stack = new LedgerStack();
  const st = stack.update(run, 500)!;
  assert.ok(st.buckets <= 501 && st.buckets >= 250, `${st.buckets} buckets`);
  // a bucket of alternating steps: the effective share is the token-weighted mean of 0.16 and 0.56
  close(st.bands[0][1].y, 0.36);
  for (const p of st.bands.at(-1)!) close(p.y, 1);
  run.markClean();
  run.append(rowsToColumns([ledgerRow(10_001, { 'ledger/effective': 960, 'ledger/no_signal_wrong': 0, 'ledger/no_signal_correct': 0, 'ledger/clipped_low': 0, 'ledger/truncated_masked': 0 })]));
  const again = stack.update(run, 500)!;
  const fresh = new LedgerStack().update(run, 500)!;
  assert.deepEqual(again.bands, fresh.bands, 'the incremental update equals a fresh one');
});

test('a run imported with some categories draws them and one "not recorded" band', () => {
  const run = series([{ step: 1, 'ledger/tokens': 100, 'ledger/effective': 30 } as MetricsRow]);
  const st = new LedgerStack().update(run, 100)!;
  const u = STACK_ORDER.indexOf(UNKNOWN_CATEGORY);
  assert.equal(st.present[u], true);
  close(st.bands[0][0].y, 0.3);
  close(st.bands[u][0].y, 1);
});

test('picking a step: the nearest step with a ledger; the latest with one', () => {
  const run = series([ledgerRow(1), ledgerRow(5), { step: 9, 'reward/mean': 0 } as MetricsRow]);
  assert.equal(run.step[nearestLedgerRow(run, 2)], 1);
  assert.equal(run.step[nearestLedgerRow(run, 4)], 5);
  assert.equal(run.step[nearestLedgerRow(run, 100)], 5);
  assert.equal(run.step[lastLedgerRow(run)], 5);
  assert.equal(nearestLedgerRow(series([{ step: 1 } as MetricsRow]), 1), -1);
});

test('the clip-ratio axis starts at 0 (fractions cannot be negative); the reward and loss axes do not', () => {
  const def = (id: string) => CHARTS.find((c) => c.id === id)!;
  assert.deepEqual(yBounds(def('clip')), { min: 0 });
  for (const id of ['accuracy', 'eval', 'kl', 'entropy', 'length', 'grad_norm', 'tps', 'time']) assert.equal(yBounds(def(id)).min, 0, id);
  assert.deepEqual(yBounds(def('reward')), {});
  assert.deepEqual(yBounds(def('loss')), {});
});
