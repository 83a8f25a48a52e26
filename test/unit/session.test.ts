import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RunStatus } from '../../src/shared/records';
import { statusText, summarize } from '../../src/training/session';
import { formatDuration } from '../../src/shared/format';

const st = (o: Partial<RunStatus>): RunStatus => ({ protocol: 1, state: 'running', phase: 'grpo', pid: 1, step: 0, max_steps: 100, started_at: 1000, updated_at: 1000, ended_at: null, last_checkpoint: null, error: null, ...o });
const opts = { attached: false, ended: false, error: null, now: 1060, startedAt: 1000 };

test('during SFT the summary and status bar say "SFT step N/M", with an ETA from the SFT pace', () => {
  const s = summarize('r', st({ phase: 'sft', sft_step: 10, sft_steps: 600 }), [], { phase: 'sft', step: 30, total: 600 }, opts);
  assert.equal(s.sftStep, 30);
  assert.equal(statusText(s), 'GRPO: SFT step 30/600');
  assert.equal(s.elapsed, 60);
  assert.equal(s.eta, 60 / 30 * 570);
});

test('during GRPO: step, reward, accuracy, KL and an ETA from the elapsed time per step', () => {
  const rows = [{ step: 1, elapsed: 4, 'reward/mean': 0.1 }, { step: 2, elapsed: 8, 'reward/mean': 0.25, accuracy: 0.5, kl: 0.002 }];
  const s = summarize('r', st({ step: 2 }), rows, { phase: 'sft', step: 600, total: 600 }, opts);
  assert.deepEqual([s.step, s.reward, s.accuracy, s.kl, s.elapsed, s.eta], [2, 0.25, 0.5, 0.002, 8, 392]);
  assert.equal(statusText(s), 'GRPO: step 2/100 · reward 0.250');
  assert.equal(statusText({ ...s, state: 'paused' }), 'GRPO: step 2/100 · reward 0.250 (paused)');
});

test('a trainer that died while running shows as failed with its error', () => {
  const s = summarize('r', st({ step: 5 }), [], null, { ...opts, ended: true, error: 'CUDA out of memory' });
  assert.equal(s.state, 'failed');
  assert.equal(s.error, 'CUDA out of memory');
  const never = summarize('r', null, [], null, { ...opts, ended: true, error: 'not found' });
  assert.equal(never.state, 'failed');
  assert.equal(summarize('r', null, [], null, opts).state, 'starting');
});

test('durations read naturally', () => {
  assert.deepEqual([formatDuration(null), formatDuration(42), formatDuration(125), formatDuration(3725)], ['–', '42s', '2m05s', '1h02m']);
});
