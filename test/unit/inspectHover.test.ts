import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canShade, fromGroup, fromScoreResult, hoverAt, onText, shadingRuns } from '../../src/inspect/docScores';
import { hoverMarkdown, tooltipText } from '../../src/shared/hover';
import type { GroupRecord } from '../../src/shared/records';

const facts = { token: '+', index: 2, count: 9, logp: -0.5, refLogp: -1.25, kl: 0.0123456, entropy: 1.5 };

test('the hover names the k3 KL with its value, both log-probs, the ratio and the advantage', () => {
  const md = hoverMarkdown({ ...facts, oldLogp: -0.75, ratio: Math.exp(0.25), advantage: -0.8 }, 'scored against step_000010');
  assert.match(md, /\| KL \(k3, to the reference\) \| 0\.01235 \|/);
  assert.match(md, /log π\\_θ \(policy\) \| -0\.5000/);
  assert.match(md, /log π\\_ref \(reference\) \| -1\.2500/);
  assert.match(md, /ratio π\\_θ\/π\\_old \| 1\.2840/);
  assert.match(md, /advantage Â \| -0\.8000/);
  assert.match(md, /token 3\/9\*\* `\+`/);
});

test('a scored document (no group) says the ratio and advantage do not apply', () => {
  const text = tooltipText(facts, 'doc');
  assert.match(text, /^'\+' — token 3\/9 of doc/);
  assert.match(text, /KL \(k3, to the reference\): 0\.01235/);
  assert.match(text, /ratio π_θ\/π_old: n\/a/);
  assert.match(text, /advantage Â: n\/a/);
});

const score = {
  tokens: ['b', 'c', '\n', 'd'], offsets: [[1, 2], [2, 3], [3, 4], [4, 5]] as [number, number][], logp: [-1, -2, -0.1, -3], ref_logp: [-1, -1, -0.1, -1],
  kl: [0, 0.3, 0, 0.9], entropy: [1, 1, 1, 1], sequence_kl: 0.3, sum_logp: -6.1, sum_ref_logp: -3.1, step: 3,
};

test('hover from cached scores: the token under the offset, or the one just before the cursor', () => {
  const s = fromScoreResult(score, 'src');
  assert.equal(hoverAt(s, 0), null, 'the unscored first character has no hover');
  assert.deepEqual(hoverAt(s, 2)?.range, [2, 3]);
  assert.match(hoverAt(s, 2)!.markdown, /KL \(k3, to the reference\) \| 0\.3000/);
  assert.deepEqual(hoverAt(s, 5)?.range, [4, 5], 'end of the document: the last token');
  assert.equal(canShade(s, 'advantage'), false);
});

test('shading groups ranges by colour and skips zero values and empty ranges', () => {
  const runs = shadingRuns(fromScoreResult(score, 'src'), 'kl');
  const all = [...runs.values()].flat();
  assert.deepEqual(all.sort((a, b) => a[0] - b[0]), [[2, 3], [4, 5]]);
  assert.equal(runs.size, 2, 'two different KL levels, two colours');
});

test('a completion of a group carries its advantages, ratio and reasoning steps into the hover', () => {
  const g: GroupRecord = {
    question: '1+2', answer: '3', prompt: '1+2\n', completions: ['1+2=3\n#### 3'], rewards: [1], advantages: [0.7], truncated: [false],
    step_rewards: [[1]], step_ends: [[5]],
    tokens: [{ text: [...'1+2=3\n#### 3', '<eos>'], logp: Array(13).fill(-0.5), old_logp: Array(13).fill(-0.5), ref_logp: Array(13).fill(-0.6), kl: Array(13).fill(0.005), advantage: Array(13).fill(0.7), entropy: Array(13).fill(0.2) }],
  };
  const s = fromGroup(g, 0, g.completions[0], 'completion 0')!;
  assert.ok(s, 'the tokens spell the completion (EOS is an empty range at the end)');
  assert.equal(canShade(s, 'advantage'), true);
  const h = hoverAt(s, 3)!.markdown;
  assert.match(h, /advantage Â \| 0\.7000/);
  assert.match(h, /ratio π\\_θ\/π\\_old \| 1\.0000/);
  assert.match(h, /reasoning step 1 \| reward 1\.000/);
  assert.match(hoverAt(s, 8)!.markdown, /reasoning step 2 \| after the last step/);
  assert.equal(fromGroup(g, 0, 'something else', 'x'), null);
  const adv = shadingRuns(s, 'advantage');
  assert.equal([...adv.keys()].length, 1);
  assert.match([...adv.keys()][0], /^rgba\(40, 180, 90/, 'a positive advantage shades green');
});

test("the trainer's code-point offsets become the editor's UTF-16 offsets, tokens the text they cover", () => {
  const text = 'a😀b\n∑c';
  // as `score` answers: Python offsets (code points), vocabulary tokens; 😀 split into two byte tokens
  const r = onText({
    tokens: ['ðŁĺ', 'Ģ', 'b', 'Ċ', 'âĪĳc'], offsets: [[1, 2], [1, 2], [2, 3], [3, 4], [4, 6]],
    logp: [-1, -2, -3, -4, -5], ref_logp: [-1, -2, -3, -4, -5], kl: [0, 0, 0, 0, 0], entropy: [1, 1, 1, 1, 1],
    sequence_kl: 0, sum_logp: -15, sum_ref_logp: -15, step: 1,
  }, text);
  assert.deepEqual(r.offsets, [[1, 3], [1, 3], [3, 4], [4, 5], [5, 7]]);
  assert.deepEqual(r.tokens, ['😀', '😀', 'b', '\n', '∑c']);
  assert.deepEqual(r.logp, [-1, -2, -3, -4, -5], 'values pass through');
  const h = hoverAt(fromScoreResult(r, 'PyTorch via python -m grpo serve: step_000001'), 6);
  assert.deepEqual(h?.range, [5, 7]);
  assert.match(h!.markdown, /PyTorch via python -m grpo serve/);
});
