import assert from 'node:assert/strict';
import { test } from 'node:test';
import { alignTokens, bucketColour, bucketOf, k3, LEVELS, quantityValues, scaleFor, sortRows, stepOfTokens, tokenAt, visibleToken } from '../../src/shared/values';
import type { GroupRecord } from '../../src/shared/records';

test('k3 KL is r − log r − 1 with r = π_ref/π_θ: zero when equal, positive otherwise', () => {
  assert.equal(k3(-1.5, -1.5), 0);
  const lp = Math.log(0.5), ref = Math.log(0.25);
  assert.ok(Math.abs(k3(lp, ref) - (0.5 - Math.log(0.5) - 1)) < 1e-12);
  assert.ok(k3(-3, -1) > 0 && k3(-1, -3) > 0);
});

test('ratio is π_θ/π_old and logp_diff is log π_θ − log π_ref, per token', () => {
  const t = { logp: [Math.log(0.5), -1], old_logp: [Math.log(0.25), -1], ref_logp: [-2, -0.5], kl: [0, 0], advantage: [1, 1], entropy: [0, 0] };
  const r = quantityValues(t, 'ratio');
  assert.ok(Math.abs(r[0] - 2) < 1e-12);
  assert.equal(r[1], 1);
  assert.deepEqual(quantityValues(t, 'logp_diff'), [Math.log(0.5) + 2, -0.5]);
  assert.equal(quantityValues(t, 'advantage'), t.advantage);
});

test('diverging scales colour by sign around the centre, full colour at the largest distance', () => {
  const s = scaleFor('advantage', [-2, -1, 0, 0.5, 1]);
  assert.equal(s.kind, 'diverging');
  assert.equal(s.span, 2);
  assert.equal(bucketOf(-2, s), -LEVELS);
  assert.equal(bucketOf(1, s), LEVELS / 2);
  assert.equal(bucketOf(0, s), 0);
  assert.ok(bucketOf(0.001, s) === 1 && bucketOf(-0.001, s) === -1, 'any non-zero value gets at least the faintest colour');
  assert.match(bucketColour(3, 'advantage'), /^rgba\(40, 180, 90/);
  assert.match(bucketColour(-3, 'advantage'), /^rgba\(230, 60, 60/);
  assert.equal(bucketColour(0, 'advantage'), 'transparent');
});

test('the ratio scale is symmetric in log space around 1; KL is sequential from 0', () => {
  const s = scaleFor('ratio', [0.5, 1, 1.25]);
  assert.ok(Math.abs(s.span - Math.log(2)) < 1e-12);
  assert.equal(bucketOf(0.5, s), -LEVELS);
  assert.equal(bucketOf(2, s), LEVELS);
  const k = scaleFor('kl', [0, 0.1, 0.4]);
  assert.equal(k.kind, 'sequential');
  assert.equal(bucketOf(0.4, k), LEVELS);
  assert.equal(bucketOf(0.1, k), LEVELS / 4);
  assert.equal(bucketOf(Number.NaN, k), 0);
  const flat = scaleFor('kl', [0, 0]);
  assert.equal(bucketOf(0, flat), 0, 'no spread, no division by zero');
});

const group = (rewards: number[], lengths: number[], truncated: boolean[]): GroupRecord => ({
  question: 'q', answer: '1', prompt: 'q\n', completions: rewards.map((_, i) => `c${i}`), rewards, advantages: rewards.map((r) => r - 0.5), truncated,
  tokens: lengths.map((n) => ({ text: Array(n).fill('x'), logp: Array(n).fill(0), old_logp: Array(n).fill(0), ref_logp: Array(n).fill(0), kl: Array(n).fill(0), advantage: Array(n).fill(0), entropy: Array(n).fill(0) })),
});

test('rows sort by reward, length or truncation; ties keep index order in both directions', () => {
  const g = group([1, 0, 1, 0], [5, 3, 9, 3], [false, true, false, true]);
  assert.deepEqual(sortRows(g, 'reward', true), [0, 2, 1, 3]);
  assert.deepEqual(sortRows(g, 'reward', false), [1, 3, 0, 2]);
  assert.deepEqual(sortRows(g, 'length', false), [1, 3, 0, 2]);
  assert.deepEqual(sortRows(g, 'truncated', true), [1, 3, 0, 2]);
  assert.deepEqual(sortRows(g, 'index', true), [3, 2, 1, 0]);
});

test('tokens belong to the reasoning step that ends at or after them; tokens after the last step get −1', () => {
  assert.deepEqual(stepOfTokens(7, [1, 4]), [0, 0, 1, 1, 1, -1, -1]);
  assert.equal(stepOfTokens(3, []), null);
  assert.equal(stepOfTokens(3, undefined), null);
});

test('tokens align to character ranges; EOS gets an empty range; a mismatch is null', () => {
  assert.deepEqual(alignTokens('1+2', ['1', '+', '2', '<eos>'], new Set(['<eos>'])), [[0, 1], [1, 2], [2, 3], [3, 3]]);
  assert.equal(alignTokens('1+2', ['1', '-', '2']), null);
  assert.equal(alignTokens('1+2', ['1', '+']), null, 'tokens that leave text over do not spell it');
  assert.deepEqual(alignTokens('ab\ncd', ['ab', '\n', 'cd']), [[0, 2], [2, 3], [3, 5]]);
});

test('tokenAt finds the token holding an offset (binary search), −1 in gaps and past the end', () => {
  const offs: [number, number][] = [[0, 2], [2, 3], [5, 6]];
  assert.equal(tokenAt(offs, 0), 0);
  assert.equal(tokenAt(offs, 1), 0);
  assert.equal(tokenAt(offs, 2), 1);
  assert.equal(tokenAt(offs, 4), -1);
  assert.equal(tokenAt(offs, 5), 2);
  assert.equal(tokenAt(offs, 6), -1);
  assert.equal(visibleToken(' \n'), '·↵');
});
