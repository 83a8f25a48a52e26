// The What-if view's pure parts: variant presets and the free field → the replay request, the messages'
// guards, and what the page draws from a replay result (columns, rows sorted by |Δ|, the colour scale,
// the ledger line, the reproduced line, a token's hover). Constructed inputs only.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import type { ReplayResult, ReplayVariant } from '../../src/shared/records';
import { checkReplayResult } from '../../src/shared/records';
import { bucketOf, LEVELS } from '../../src/shared/values';
import {
  checkVariant, DEFAULT_CHOSEN, describeSettings, isHostToWhatIf, isWhatIfToHost, MAX_VARIANTS, missingRecordNote, parseFreeVariants, presetOf, replayParams, REPLAYABLE_SETTINGS,
  sameAsRun, VARIANT_PRESETS, type WhatIfView,
} from '../../src/inspect/whatifProtocol';
import { isInspectorToHost } from '../../src/inspect/inspectorProtocol';
import { replayableSteps } from '../../src/rundir/runDir';
import * as os from 'node:os';
import {
  cellValues, columnsOf, defaultSortColumn, deltas, deltaScale, diffFromRun, ledgerLine, maxAbsSeq, meanAbsDelta, reproducedLine, rowOrder, signed, smallDiff, tokenTip,
} from '../../webview/whatif/model';

const preset = (id: string) => VARIANT_PRESETS.find((p) => p.id === id)!;

/** A ledger of 1,000 tokens: 620 effective, 30 clipped (20 low, 10 high), 300 without signal, 50 masked by `masked`. */
function ledger(masked = 0): Record<string, number> {
  const parts: Record<string, number> = {
    'ledger/filtered': 0, 'ledger/truncated_masked': masked, 'ledger/no_signal_correct': 100, 'ledger/no_signal_wrong': 200,
    'ledger/no_signal_other': 0, 'ledger/masked_other': 0, 'ledger/clipped_low': 20, 'ledger/clipped_high': 10, 'ledger/effective': 670 - masked,
  };
  return { 'ledger/tokens': Object.values(parts).reduce((a, b) => a + b, 0), ...parts, 'groups/sampled': 4, 'groups/mixed': 2 };
}

function variant(name: string, settings: Record<string, string | number | boolean>, deltaLogp: number[][], extra: Partial<ReplayVariant> = {}): ReplayVariant {
  return {
    name, settings, loss: 0.25, grad_norm: 1.5, delta_logp: deltaLogp,
    delta_seq: deltaLogp.map((r) => r.reduce((a, b) => a + b, 0)), ledger: ledger(), ...extra,
  };
}

/** Three completions of two questions; the run's own variant deliberately second in the list. */
function result(): ReplayResult {
  return {
    step: 10, run_dir: '/runs/tiny', questions: ['1+2', '3*4'], seconds: 2.5,
    completions: [
      { group: 0, text: '3', tokens: ['3', '<eos>'], reward: 1, advantage: 0.7, truncated: false },
      { group: 0, text: '4', tokens: ['4', '<eos>'], reward: 0, advantage: -0.7, truncated: false },
      { group: 1, text: '12 ', tokens: ['1', '2', ' '], reward: 1, advantage: 0.5, truncated: true },
    ],
    variants: [
      variant('loss_type=dr_grpo', { loss_type: 'dr_grpo' }, [[0.01, 0.0], [-0.05, -0.01], [0.001, 0.002, 0.0]]),
      variant('run', {}, [[0.02, 0.01], [-0.01, 0.0], [0.1, 0.0, 0.0]], { reproduced: 3e-7 }),
      variant('importance_sampling_level=sequence', { importance_sampling_level: 'sequence' }, [[0.0, 0.0], [0.0, 0.0], [-0.2, 0.1, 0.0]]),
    ],
  };
}

test('the presets speak TRL\'s setting names and each is a valid setting of the schema', () => {
  for (const p of VARIANT_PRESETS) assert.equal(checkVariant(p.settings), null, p.id);
  assert.deepEqual(['grpo', 'dr_grpo', 'dapo', 'bnpo'].map((l) => preset(l).settings), ['grpo', 'dr_grpo', 'dapo', 'bnpo'].map((l) => ({ loss_type: l })));
  assert.deepEqual(preset('gspo').settings, { importance_sampling_level: 'sequence' });
  assert.deepEqual(['group', 'batch', 'none'].map((s) => preset(`scale_${s}`).settings.scale_rewards), ['group', 'batch', 'none']);
  assert.deepEqual(preset('clip_higher').settings, { epsilon_high: 0.28 });
  assert.deepEqual(preset('mask_truncated').settings, { mask_truncated_completions: true });
  assert.deepEqual(preset('top_entropy').settings, { top_entropy_quantile: 0.2 });
  assert.equal(presetOf({ importance_sampling_level: 'sequence' })?.short, 'GSPO');
  assert.equal(presetOf({ loss_type: 'dr_grpo', beta: 0 }), null);
  assert.ok(sameAsRun(preset('grpo'), { loss_type: 'grpo' }));
  assert.ok(!sameAsRun(preset('dr_grpo'), { loss_type: 'grpo' }));
  assert.ok(!sameAsRun(preset('grpo'), null));
});

test('chosen presets and the free field make the replay request: preset order, free variants after, duplicates once', () => {
  assert.deepEqual(replayParams(10, DEFAULT_CHOSEN), { ok: true, value: { step: 10, variants: [{ loss_type: 'dr_grpo' }, { importance_sampling_level: 'sequence' }] } });
  // the chooser's order, whatever order they were ticked in; a free variant equal to a preset is asked once
  const r = replayParams(3, { presets: ['gspo', 'scale_none', 'dr_grpo'], free: 'loss_type=dapo, epsilon_high=0.28; scale_rewards=none; mask_truncated_completions=true beta=0' });
  assert.ok(r.ok, !r.ok ? r.error : '');
  assert.deepEqual(r.value.variants, [
    { loss_type: 'dr_grpo' }, { importance_sampling_level: 'sequence' }, { scale_rewards: 'none' },
    { loss_type: 'dapo', epsilon_high: 0.28 }, { mask_truncated_completions: true, beta: 0 },
  ]);
  assert.deepEqual(replayParams(1, { presets: [], free: '  ' }), { ok: true, value: { step: 1, variants: [] } });
  const many = replayParams(1, { presets: VARIANT_PRESETS.map((p) => p.id), free: '' });
  assert.ok(!many.ok && new RegExp(`at most ${MAX_VARIANTS} variants`).test(many.error), JSON.stringify(many));
});

test('the settings a replay may change are the trainer\'s (replay.py REPLAYABLE)', () => {
  const py = fs.readFileSync(path.join(__dirname, '..', '..', 'trainer', 'grpo', 'replay.py'), 'utf8');
  const tuple = /^REPLAYABLE = \(([^)]*)\)/m.exec(py)?.[1];
  assert.ok(tuple, 'REPLAYABLE in replay.py');
  assert.deepEqual([...tuple.matchAll(/"(\w+)"/g)].map((m) => m[1]), [...REPLAYABLE_SETTINGS]);
  const t = parseFreeVariants('temperature=0.5');
  assert.ok(!t.ok && /temperature cannot be replayed: only the objective's settings may change/.test(t.error), JSON.stringify(t));
  assert.match(checkVariant({ num_generations: 8 }) ?? '', /num_generations cannot be replayed/);
});

test('the free field names every problem: not key=value, unknown setting, wrong value', () => {
  const r = parseFreeVariants('loss_type=ppo, nosuch=1; beta=-1 lonely; mask_truncated_completions=maybe');
  assert.ok(!r.ok);
  assert.match(r.error, /loss_type must be one of grpo, dr_grpo, dapo, bnpo/);
  assert.match(r.error, /unknown setting 'nosuch'/);
  assert.match(r.error, /beta must be ≥ 0/);
  assert.match(r.error, /'lonely' is not key=value/);
  assert.match(r.error, /mask_truncated_completions must be true or false/);
  assert.deepEqual(parseFreeVariants('epsilon_high=none top_entropy_quantile=0.5 importance_sampling_level="sequence"'),
    { ok: true, value: [{ epsilon_high: null, top_entropy_quantile: 0.5, importance_sampling_level: 'sequence' }] });
  assert.equal(checkVariant({}), 'a variant changes no setting');
  assert.equal(describeSettings({ loss_type: 'dapo', epsilon_high: 0.28, mask_truncated_completions: true }), 'loss_type=dapo, epsilon_high=0.28, mask_truncated_completions=true');
});

test('the messages\' guards: a view with a replay result passes, too many variants or a bad result do not', () => {
  const r = result();
  assert.ok(checkReplayResult(r).ok, 'the constructed result is a ReplayResult');
  const view: WhatIfView = { runDir: '/runs/tiny', runName: 'tiny', step: 10, runSettings: { loss_type: 'grpo' }, replayable: [8, 9, 10], chosen: DEFAULT_CHOSEN, phase: { kind: 'result', result: r, source: 'the live trainer' } };
  assert.ok(isHostToWhatIf({ type: 'view', view }));
  assert.ok(isHostToWhatIf({ type: 'view', view: { ...view, phase: { kind: 'loading', variants: [{ loss_type: 'dapo' }], since: 1 } } }));
  assert.ok(isHostToWhatIf({ type: 'view', view: { ...view, phase: { kind: 'error', message: 'no replay record for step 10' } } }));
  assert.ok(!isHostToWhatIf({ type: 'view', view: { ...view, phase: { kind: 'result', result: { ...r, variants: 'x' }, source: 's' } } }));
  assert.ok(!isHostToWhatIf({ type: 'view', view: { ...view, step: 'ten' } }));
  assert.ok(isWhatIfToHost({ type: 'replay', variants: [{ loss_type: 'dapo' }], chosen: { presets: [], free: 'loss_type=dapo' } }));
  assert.ok(!isWhatIfToHost({ type: 'replay', variants: Array.from({ length: MAX_VARIANTS + 1 }, () => ({ beta: 0 })), chosen: DEFAULT_CHOSEN }));
  assert.ok(!isWhatIfToHost({ type: 'replay', variants: [{ nested: { a: 1 } }], chosen: DEFAULT_CHOSEN }));
  assert.ok(isWhatIfToHost({ type: 'cancel' }));
  assert.ok(isWhatIfToHost({ type: 'openStep', step: 8 }));
  assert.ok(!isWhatIfToHost({ type: 'openStep', step: -1 }));
  assert.ok(!isHostToWhatIf({ type: 'view', view: { ...view, replayable: ['8'] } }));
  assert.ok(isInspectorToHost({ type: 'whatIf' }));
});

test('a step without a replay record is said before asking, with the steps that have one', () => {
  assert.equal(missingRecordNote(10, [8, 9, 10]), null);
  assert.match(missingRecordNote(7, [8, 9, 10])!, /no replay record of step 7: it keeps them at log_samples_steps, the newest replay_total_limit of them\. Replayable steps:$/);
  assert.match(missingRecordNote(7, [])!, /no replay record yet .* Replaying step 7 will say why/);
});

test('replayable steps: complete records only (checksums.json written last); links and strays ignored', () => {
  const run = fs.mkdtempSync(path.join(os.tmpdir(), 'whatif-'));
  try {
    assert.deepEqual(replayableSteps(run), [], 'no replay/ folder');
    const rec = (name: string, complete = true) => {
      fs.mkdirSync(path.join(run, 'replay', name), { recursive: true });
      if (complete) fs.writeFileSync(path.join(run, 'replay', name, 'checksums.json'), '{}');
    };
    rec('step_000020');
    rec('step_000010');
    rec('step_000030', false); // being written
    rec('notes');
    fs.writeFileSync(path.join(run, 'replay', 'step_000040'), 'a file');
    const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'whatif-out-'));
    fs.writeFileSync(path.join(elsewhere, 'checksums.json'), '{}');
    fs.symlinkSync(elsewhere, path.join(run, 'replay', 'step_000050'));
    assert.deepEqual(replayableSteps(run), [10, 20]);
    fs.rmSync(elsewhere, { recursive: true });
  } finally {
    fs.rmSync(run, { recursive: true, force: true });
  }
});

test('columns: the run\'s own settings first, then each alternative, named by its preset', () => {
  const cols = columnsOf(result());
  assert.deepEqual(cols.map((c) => [c.variant, c.isRun, c.label]), [[1, true, 'this run'], [0, false, 'Dr. GRPO'], [2, false, 'GSPO']]);
  assert.equal(cols[1].detail, 'loss_type=dr_grpo');
  assert.equal(defaultSortColumn(cols), 1, 'the first alternative');
  assert.equal(defaultSortColumn(cols.slice(0, 1)), 0);
});

test('rows sorted by |Δ seq| of the chosen column, largest first; ties and non-numbers keep the batch order', () => {
  const r = result();
  const cols = columnsOf(r);
  // Dr. GRPO: Δ seq = [0.01, -0.06, 0.003] → |Δ| order 1, 0, 2
  assert.deepEqual(rowOrder(r, cols, { by: 'delta', column: 1 }), [1, 0, 2]);
  // the run: [0.03, -0.01, 0.1] → 2, 0, 1
  assert.deepEqual(rowOrder(r, cols, { by: 'delta', column: 0 }), [2, 0, 1]);
  // GSPO: [0, 0, -0.1] → 2, then the tie 0, 1 in order
  assert.deepEqual(rowOrder(r, cols, { by: 'delta', column: 2 }), [2, 0, 1]);
  assert.deepEqual(rowOrder(r, cols, { by: 'index' }), [0, 1, 2]);
  r.variants[0].delta_seq = [NaN, 0.001, 0.002];
  assert.deepEqual(rowOrder(r, cols, { by: 'delta', column: 1 }), [2, 1, 0]);
});

test('the Δ log π scale: diverging around 0, full colour at the 98th percentile of |Δ|, outliers clamped', () => {
  const values = [...Array.from({ length: 99 }, (_, i) => (i % 2 ? 1 : -1) * (i + 1) * 1e-4), 5];
  const s = deltaScale(values);
  assert.equal(s.kind, 'diverging');
  assert.equal(s.center, 0);
  assert.equal(s.quantity, 'logp_diff');
  assert.ok(Math.abs(s.span - 98e-4) < 1e-12, `span ${s.span}`);
  assert.equal(bucketOf(5, s), LEVELS, 'an outlier is full colour, not the whole scale');
  assert.equal(bucketOf(-98e-4, s), -LEVELS);
  assert.ok(bucketOf(1e-4, s) > 0 && bucketOf(-1e-4, s) < 0, 'small changes still get a colour of their sign');
  assert.equal(bucketOf(0, s), 0);
  assert.equal(bucketOf(NaN, s), 0);
  const flat = deltaScale([0, 0, NaN]);
  assert.equal(bucketOf(0, flat), 0);
  assert.ok(flat.span > 0);
  const r = result();
  assert.equal([...deltas(r, columnsOf(r))].length, 3 * 7);
});

test('a cell\'s values follow its tokens (a short array leaves the rest uncoloured); sizes in one number', () => {
  const r = result();
  r.variants[0].delta_logp[2] = [0.5];
  const v = cellValues(r, 0, 2);
  assert.equal(v.length, 3);
  assert.equal(v[0], 0.5);
  assert.ok(Number.isNaN(v[1]) && Number.isNaN(v[2]));
  assert.ok(Math.abs(meanAbsDelta(result().variants[1]) - (0.02 + 0.01 + 0.01 + 0.1) / 7) < 1e-12);
  assert.equal(maxAbsSeq(result(), columnsOf(result())), 0.1);
  assert.equal(signed(0.0123), '+0.0123');
  assert.equal(signed(-4.1e-4), '−4.10e-4');
  assert.equal(signed(0), '0');
});

test('the ledger in one line: effective, clipped, masked only when some were, no signal — the dashboard\'s categories', () => {
  const l = ledgerLine(ledger());
  assert.equal(l.text, 'effective 67% · clipped 3% · no signal 30%');
  assert.deepEqual(l.parts.map((p) => p.tone), ['green', 'orange', 'grey']);
  assert.match(l.parts[1].title, /clipped: ratio < 1−ε, Â < 0 \+ clipped: ratio > 1\+ε, Â > 0/);
  assert.deepEqual(l.bands.map((b) => b.category.key), ['ledger/no_signal_correct', 'ledger/no_signal_wrong', 'ledger/clipped_low', 'ledger/clipped_high', 'ledger/effective']);
  assert.ok(Math.abs(l.bands.reduce((s, b) => s + b.share, 0) - 1) < 1e-12);
  assert.equal(ledgerLine(ledger(50)).text, 'effective 62% · clipped 3% · masked 5% · no signal 30%');
  assert.equal(ledgerLine({}).text, 'signal ledger not recorded');
  assert.equal(ledgerLine({ 'ledger/tokens': 100, 'ledger/effective': 40 }).text, 'effective 40%');
});

test('the run\'s column says how closely the replay reproduces the logged step', () => {
  const r = result();
  assert.deepEqual(reproducedLine(r), { text: 'replay reproduces the logged step to 3.0e-7 (max |log π after − the logged log π after|)', ok: true });
  r.variants[1].reproduced = 0.02;
  const bad = reproducedLine(r)!;
  assert.equal(bad.ok, false);
  assert.match(bad.text, /differs from the logged step by up to 0\.0200/);
  delete r.variants[1].reproduced;
  assert.equal(reproducedLine(r), null);
  r.variants[1].reproduced = 0;
  assert.match(reproducedLine(r)!.text, /reproduces the logged step to 0 \(exact\)/);
});

test('an alternative whose update is the run\'s own says so (GSPO with one update: every ratio is 1)', () => {
  const r = result();
  // the trainer's 6 significant digits: 4.60961 vs 4.60962 is the same update
  r.variants[1].delta_logp[0][0] = 4.60961;
  r.variants[2].delta_logp = r.variants[1].delta_logp.map((row) => row.map((d) => d + 1e-7));
  r.variants[2].delta_logp[0][0] = 4.60962;
  const cols = columnsOf(r);
  assert.equal(diffFromRun(r, cols, 0), null, 'the run\'s own column');
  const dr = diffFromRun(r, cols, 1)!;
  assert.equal(dr.same, false);
  assert.ok(Math.abs(dr.max - (4.60961 - 0.01)) < 1e-12, 'Dr. GRPO differs most at completion 0, token 0');
  const gspo = diffFromRun(r, cols, 2)!;
  assert.ok(gspo.same && gspo.max > 5e-6, JSON.stringify(gspo));
  r.variants[2].delta_logp[1][1] = 1e-3;
  assert.equal(diffFromRun(r, cols, 2)!.same, false, 'one token moved differently is another update');
  assert.equal(smallDiff(3e-7), '3.0e-7');
});

test('a token\'s hover: the token, its Δ here and under every other column, the advantage', () => {
  const r = result();
  const cols = columnsOf(r);
  const tip = tokenTip(r, cols, 1, 1, 0);
  assert.match(tip, /^'4' — token 1\/2 of completion #1 \(question 1: 1\+2\)/);
  assert.match(tip, /Δ log π under loss_type=dr_grpo: −0\.05000/);
  assert.match(tip, /under this run's settings: −0\.01000/);
  assert.match(tip, /under importance_sampling_level=sequence: 0\n/);
  assert.match(tip, /advantage Â −0\.7000 · reward 0\.000$/);
  assert.match(tokenTip(r, cols, 0, 2, 2), /'·' — token 3\/3 .* · truncated$/s);
  assert.equal(tokenTip(r, cols, 9, 0, 0), '');
});
