// "Edit a completion, see it re-scored": the request built from a completion document, the lines shown above
// it, the answer placed on the edited text (offsets, hover), and the debounce that sends only the newest text.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hoverAt, shadingRuns } from '../../src/inspect/docScores';
import { groupLine, lensTitles, num, rescoredScores, rescoreParams, stepsLine, type RescoreIdentity } from '../../src/inspect/rescoreView';
import { LatestOnly, type Outcome, type Timers } from '../../src/shared/latestOnly';
import { checkRescoreResult, type RescoreResult } from '../../src/shared/records';

const id: RescoreIdentity = {
  question: '(3+1)*3', index: 1, group: ['#### 7', '3+1=4\n#### 9', '#### 12', 'x'], answer: '12',
  rewards: [0, 0, 1, 0], advantages: [-0.5, -0.5, 1.5, -0.5], stepRewards: [1, 0], logged: true, step: 2,
};

function result(over: Partial<RescoreResult> = {}): RescoreResult {
  const r: RescoreResult = {
    question: '(3+1)*3', answer: '12', prompt: '(3+1)*3\n', completion: '3+1=4\n#### 12', index: 1, reward: 1, correct: true, advantage: 0.866025,
    rewards: [0, 1, 1, 0], advantages: [-0.866025, 0.866025, 0.866025, -0.866025], step_rewards: [1, 1], step_ends: [4, 12],
    tokens: [...'3+1=4\n#### 12'], offsets: [...'3+1=4\n#### 12'].map((_, i): [number, number] => [i, i + 1]),
    logp: Array(13).fill(-1), ref_logp: Array(13).fill(-1.5), kl: Array(13).fill(0.1), ratio: Array(13).fill(Math.exp(0.5)),
    token_advantages: Array(13).fill(0.866025), sequence_kl: 0.1, step: 2, ...over,
  };
  return r;
}

test('the request: the edited text in the group at its index, the group\'s answer', () => {
  assert.deepEqual(rescoreParams(id, 'new text'), { question: '(3+1)*3', completion: 'new text', group: id.group, index: 1, answer: '12' });
  // no group (a single completion), no known answer: the trainer's defaults
  assert.deepEqual(rescoreParams({ question: 'q', index: 0, answer: null, step: null }, 't'), { question: 'q', completion: 't' });
  assert.deepEqual(rescoreParams({ ...id, index: 9 }, 't'), { question: '(3+1)*3', completion: 't', answer: '12' }, 'an index outside the group sends no group');
  assert.ok(checkRescoreResult(result()).ok, 'the fixture is a valid answer');
  assert.equal(checkRescoreResult({ ...result(), advantages: [0] }).ok, false, 'one advantage per reward');
});

test('numbers: two decimals, a real minus sign, a plus on advantages', () => {
  assert.equal(num(1), '1.00');
  assert.equal(num(-0.4142), '−0.41');
  assert.equal(num(1.2247, true), '+1.22');
  assert.equal(num(-0.001, true), '0.00');
  assert.equal(num(Number.NaN), '–');
});

test('the lines above the text: reward and advantage against what was logged, the group, the steps', () => {
  const t = lensTitles(id, { kind: 'result', result: result() });
  assert.deepEqual(t, ['GRPO reward 1.00 (was 0.00) · advantage +0.87 (was −0.50) · right ✓', 'group advantages −0.87 [+0.87] +0.87 −0.87', 'steps 1✓ 2✓']);
  const noted = lensTitles(id, { kind: 'result', result: result({ note: 'no answer known', reward_errors: ['ValueError: no'] }) });
  assert.ok(noted.includes('no answer known') && noted.includes('reward function failed: ValueError: no'));
  // before any edit: the logged numbers and what to do
  assert.deepEqual(lensTitles(id, { kind: 'logged' }), ['GRPO reward 0.00 · advantage −0.50 (logged at step 2)', 'steps 1✓ 2✗', 'edit the text to re-score it']);
  assert.match(lensTitles({ question: 'q', index: 0, step: null }, { kind: 'logged' })[0], /edit the text/);
  // under way: the last answer stays in view; a refusal says why
  assert.deepEqual(lensTitles(id, { kind: 'pending', last: result() }), ['$(sync~spin) re-scoring…', 'GRPO reward 1.00 (was 0.00) · advantage +0.87 (was −0.50) · right ✓']);
  assert.deepEqual(lensTitles(id, { kind: 'error', message: "parameter 'completion' is empty" }), ["$(warning) not re-scored: parameter 'completion' is empty"]);
});

test('long groups show the first 16 advantages and the edited one', () => {
  const adv = Array.from({ length: 20 }, (_, i) => (i === 18 ? 2 : -0.1));
  assert.equal(groupLine(adv, 18), `group advantages ${Array(16).fill('−0.10').join(' ')} … [#18 +2.00] … (+3)`);
  assert.equal(groupLine([0, 0], 0), 'group advantages [0.00] 0.00');
  assert.equal(stepsLine([1, 0.5, 0]), 'steps 1✓ 2:0.50 3✗');
});

test('the answer on the edited text: UTF-16 offsets past U+FFFF, tokens as their text, steps and π_θ/π_ref in the hover', () => {
  const text = '😀 12\n#### 12';
  const cps = [...text]; // 12 code points, 13 UTF-16 units
  const r = result({
    completion: text, tokens: ['ðŁĺĢ', 'Ġ12', 'Ċ', '####', 'Ġ12'], offsets: [[0, 1], [1, 4], [4, 5], [5, 9], [9, cps.length]],
    logp: [-2, -1, -0.5, -0.1, -0.2], ref_logp: [-2, -2, -0.5, -0.1, -0.2], kl: [0, 0.72, 0, 0, 0], ratio: [1, Math.E, 1, 1, 1],
    token_advantages: [0.5, 0.5, 0.5, 0.5, 0.5], step_rewards: [1, 0], step_ends: [2, 4],
  });
  const s = rescoredScores(r, text, 'your edit');
  assert.deepEqual(s.offsets, [[0, 2], [2, 5], [5, 6], [6, 10], [10, 13]]);
  assert.deepEqual(s.tokens, ['😀', ' 12', '\n', '####', ' 12']);
  assert.deepEqual(s.stepOf, [0, 0, 0, 1, 1]);
  const h = hoverAt(s, 3)!;
  assert.deepEqual(h.range, [2, 5]);
  assert.match(h.markdown, /KL \(k3, to the reference\) \| 0\.72000/);
  assert.match(h.markdown, /ratio π\\_θ\/π\\_ref \| 2\.7183/);
  assert.match(h.markdown, /advantage Â \| 0\.5000/);
  assert.match(h.markdown, /reasoning step 1 \| reward 1\.000/);
  assert.match(h.markdown, /_your edit_/);
  assert.match(hoverAt(s, 12)!.markdown, /reasoning step 2 \| reward 0\.000/);
  const shaded = [...shadingRuns(s, 'kl').values()].flat();
  assert.deepEqual(shaded, [[2, 5]], 'only the token with KL is shaded');
});

/** Timers that run when told to. */
class FakeTimers implements Timers {
  now = 0;
  private next = 1;
  private readonly due = new Map<number, { at: number; fn: () => void }>();
  set(fn: () => void, ms: number): unknown {
    const h = this.next++;
    this.due.set(h, { at: this.now + ms, fn });
    return h;
  }
  clear(h: unknown): void {
    this.due.delete(h as number);
  }
  advance(ms: number): void {
    this.now += ms;
    for (const [h, t] of [...this.due].sort((a, b) => a[1].at - b[1].at)) {
      if (t.at <= this.now) {
        this.due.delete(h);
        t.fn();
      }
    }
  }
}

const flush = () => new Promise((r) => setImmediate(r));

function harness() {
  const timers = new FakeTimers();
  let input = '';
  const started: { text: string; resolve: (v: string) => void; reject: (e: Error) => void }[] = [];
  const delivered: Outcome<string>[] = [];
  const stale: number[] = [];
  const runner = new LatestOnly<string>(400, () => new Promise<string>((resolve, reject) => started.push({ text: input, resolve, reject })),
    (o) => delivered.push(o), timers, (g) => stale.push(g));
  const type = (t: string) => {
    input = t;
    runner.changed();
  };
  return { timers, started, delivered, stale, runner, type };
}

test('typing: one request once the text has been still for 400 ms, with the newest text', async () => {
  const h = harness();
  h.type('a');
  h.timers.advance(300);
  h.type('ab');
  h.timers.advance(300);
  h.type('abc');
  h.timers.advance(399);
  assert.equal(h.started.length, 0, 'still typing');
  assert.equal(h.runner.pending, true);
  h.timers.advance(1);
  assert.deepEqual(h.started.map((s) => s.text), ['abc']);
  h.started[0].resolve('answer abc');
  await flush();
  assert.deepEqual(h.delivered, [{ ok: true, value: 'answer abc' }]);
  assert.equal(h.runner.pending, false);
});

test('an edit while a request is in flight: its answer is dropped, the newest text goes once it settles', async () => {
  const h = harness();
  h.type('a');
  h.timers.advance(400);
  h.type('ab');
  h.timers.advance(400);
  assert.equal(h.started.length, 1, 'one request at a time');
  h.started[0].resolve('answer a');
  await flush();
  assert.equal(h.delivered.length, 0, 'the stale answer is never shown');
  assert.equal(h.stale.length, 1);
  assert.deepEqual(h.started.map((s) => s.text), ['a', 'ab']);
  h.started[1].reject(new Error("parameter 'completion' is empty"));
  await flush();
  assert.equal(h.delivered.length, 1);
  assert.equal(h.delivered[0].ok, false);
  // an edit during flight whose quiet period ends after the answer: sent then, not before
  h.type('abc');
  h.timers.advance(400);
  h.type('abcd');
  h.timers.advance(100);
  h.started[2].resolve('answer abc');
  await flush();
  assert.equal(h.started.length, 3, 'waits out the quiet period');
  h.timers.advance(300);
  assert.deepEqual(h.started.map((s) => s.text), ['a', 'ab', 'abc', 'abcd']);
  h.runner.dispose();
  h.started[3].resolve('late');
  await flush();
  assert.equal(h.delivered.length, 1, 'nothing delivered after dispose');
  h.type('x');
  h.timers.advance(1000);
  assert.equal(h.started.length, 4);
});
