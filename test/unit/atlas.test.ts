// The prompt atlas: categories, live (incremental) feeding from questions.jsonl, bad rows, bounded memory.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { Atlas, CATEGORIES, describeHistory, isSolved, MAX_QUESTION_CHARS, questionKey, SOLVED_PASS_RATE, SPARK_BUCKETS, Sparkline, sparkText } from '../../src/atlas/atlas';
import { AtlasFeed } from '../../src/atlas/atlasFeed';
import { findQuestionSteps } from '../../src/rundir/runDir';
import type { QuestionsRow } from '../../src/shared/records';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-atlas-'));
const train = (step: number, qs: Record<string, number>, G = 4): QuestionsRow => ({ step, source: 'train', questions: Object.keys(qs), passed: Object.values(qs), samples: G });
const evalRow = (step: number, qs: Record<string, number>): QuestionsRow => ({ step, source: 'eval', questions: Object.keys(qs), passed: Object.values(qs), samples: 1 });
const line = (r: unknown) => JSON.stringify(r) + '\n';

test('solved: a group at or above the pass-rate threshold, a right greedy answer', () => {
  assert.equal(SOLVED_PASS_RATE, 0.5);
  assert.equal(isSolved(2, 4), true);
  assert.equal(isSolved(1, 4), false);
  assert.equal(isSolved(1, 1), true);
  assert.equal(isSolved(0, 1), false);
});

test('each category, constructed', () => {
  const a = new Atlas();
  // never: 0/4, 1/4, then a wrong greedy answer; always: 4/4, 2/4, right
  a.add(train(1, { never: 0, always: 4, learned: 0, forgotten: 3, unstable: 0 }));
  a.add(train(2, { never: 1, always: 2, learned: 1, forgotten: 4, unstable: 3 }));
  a.add(train(3, { learned: 2, forgotten: 1, unstable: 0 }));
  a.add(train(4, { learned: 4, forgotten: 0, unstable: 4 }));
  a.add(evalRow(5, { never: 0, always: 1, learned: 1, forgotten: 0 }));
  const cat = Object.fromEntries([...a.questions()].map((h) => [h.question, h.category]));
  assert.deepEqual(cat, { never: 'never', always: 'always', learned: 'learned', forgotten: 'forgotten', unstable: 'unstable' });
  assert.equal(a.get('learned')!.lastFlipStep, 3, 'learned at step 3, solved since');
  assert.equal(a.get('forgotten')!.lastFlipStep, 3, 'lost at step 3, unsolved since');
  assert.equal(a.get('unstable')!.flips, 3);
  const counts = a.categoryCounts();
  assert.deepEqual(CATEGORIES.map((c) => counts[c]), [1, 1, 1, 1, 1]);
  assert.equal(a.counts.observations, 5 + 5 + 3 + 3 + 4);
  const h = a.get('learned')!;
  assert.deepEqual(h.train.values(), [0, 0.25, 0.5, 1]);
  assert.deepEqual(h.eval.values(), [1]);
  assert.equal(h.trainPassed, 7);
  assert.equal(h.trainSamples, 16);
  assert.match(describeHistory(h), /learned: solved in 3 of 5 observations, 1 change, solved from step 3/);
});

test('a held-out question is categorised by its greedy answers; one observation is never or always', () => {
  const a = new Atlas();
  a.add(evalRow(0, { h1: 0, h2: 1, h3: 0, h4: 1 }));
  a.add(evalRow(50, { h1: 1, h2: 1, h3: 0 }));
  a.add(evalRow(100, { h1: 1, h2: 0, h3: 0 }));
  assert.equal(a.get('h1')!.category, 'learned');
  assert.equal(a.get('h2')!.category, 'forgotten');
  assert.equal(a.get('h3')!.category, 'never');
  assert.equal(a.get('h4')!.category, 'always');
  assert.equal(a.get('h1')!.train.n, 0);
});

test('lists: most telling first, limited, with the total', () => {
  const a = new Atlas();
  a.add(train(1, { a: 0, b: 0, c: 0 }));
  a.add(train(2, { a: 4, b: 0 }));
  a.add(train(3, { b: 4 }));
  const learned = a.list('learned');
  assert.deepEqual(learned.items.map((h) => h.question), ['b', 'a'], 'latest learned first');
  const one = a.list('learned', 1);
  assert.equal(one.items.length, 1);
  assert.equal(one.total, 2);
});

test('bad rows are counted and skipped: unreadable lines, wrong fields, impossible counts', () => {
  const dir = tmp();
  fs.writeFileSync(path.join(dir, 'questions.jsonl'), [
    line(train(1, { q: 2 })),
    'not json\n',
    line({ step: 2, source: 'train', questions: ['q'], passed: [1, 2], samples: 4 }), // lengths differ
    line({ step: 2, source: 'other', questions: ['q'], passed: [1], samples: 4 }),
    line({ step: 2, source: 'train', questions: ['q'], passed: [5], samples: 4 }), // more right than sampled
    line({ step: 2, source: 'eval', questions: ['q'], passed: [1], samples: 4 }), // greedy has one sample
    line({ step: 2, source: 'train', questions: ['q'], passed: [-1], samples: 4 }),
    '[1, 2]\n',
    line(train(3, { q: 0 })),
  ].join(''));
  const feed = new AtlasFeed(dir);
  feed.pump();
  assert.equal(feed.atlas.counts.rows, 2);
  assert.equal(feed.atlas.counts.badRows, 7);
  assert.equal(feed.atlas.get('q')!.category, 'forgotten');
});

test('live: rows fed as the file grows, a torn line completed later, a rewritten file read again', () => {
  const dir = tmp();
  const file = path.join(dir, 'questions.jsonl');
  const feed = new AtlasFeed(dir);
  assert.deepEqual(feed.pump(), { changed: false, more: false }, 'no file yet');
  fs.writeFileSync(file, line(evalRow(0, { q: 0 })) + line(train(1, { q: 1 })).slice(0, 20));
  assert.equal(feed.pump().changed, true);
  assert.equal(feed.atlas.counts.rows, 1);
  assert.equal(feed.atlas.counts.badRows, 0, 'a torn line is waited for, not counted');
  fs.appendFileSync(file, line(train(1, { q: 1 })).slice(20) + line(train(2, { q: 3 })));
  feed.pump();
  assert.equal(feed.atlas.counts.rows, 3);
  assert.equal(feed.atlas.get('q')!.category, 'learned');
  assert.equal(feed.atlas.lastStep, 2);
  assert.equal(feed.pump().changed, false, 'nothing new');
  fs.writeFileSync(file, line(train(1, { other: 4 })));
  assert.equal(feed.pump().changed, true);
  assert.equal(feed.atlas.size, 1, 'a shorter (rewritten) file starts the atlas over');
  assert.equal(feed.atlas.get('q'), undefined);
});

test('live: a large file is read in bounded chunks', () => {
  const dir = tmp();
  const rows = Array.from({ length: 500 }, (_, i) => line(train(i + 1, { [`q${i % 50}`]: i % 5 })));
  fs.writeFileSync(path.join(dir, 'questions.jsonl'), rows.join(''));
  const feed = new AtlasFeed(dir, 1024);
  const first = feed.pump(2);
  assert.equal(first.more, true);
  assert.ok(feed.atlas.counts.rows < 500 && feed.atlas.counts.rows > 0);
  while (feed.pump(2).more);
  assert.equal(feed.atlas.counts.rows, 500);
  assert.equal(feed.atlas.size, 50);
});

test('questions.jsonl as a symlink is not followed', () => {
  const dir = tmp();
  const outside = path.join(tmp(), 'q.jsonl');
  fs.writeFileSync(outside, line(train(1, { secret: 1 })));
  fs.symlinkSync(outside, path.join(dir, 'questions.jsonl'));
  const feed = new AtlasFeed(dir);
  feed.pump();
  assert.equal(feed.atlas.size, 0);
  assert.match(feed.unreadable ?? '', /symbolic link/);
});

test('bounded memory: a sparkline keeps at most SPARK_BUCKETS buckets, each the mean of its values', () => {
  const s = new Sparkline();
  for (let i = 0; i < 10_000; i++) s.push(i % 2);
  assert.ok(s.size <= SPARK_BUCKETS);
  assert.equal(s.n, 10_000);
  assert.ok(s.values().every((v) => Math.abs(v - 0.5) < 0.01), 'alternating 0/1 averages to 0.5 per bucket');
  const r = new Sparkline();
  for (let i = 0; i < 1000; i++) r.push(i < 500 ? 0 : 1);
  const v = r.values();
  assert.equal(v[0], 0);
  assert.equal(v[v.length - 1], 1, 'the shape is kept: low first, high last');
  assert.equal(sparkText([0, 0.5, 1]), '▁▅█');
});

test('bounded memory: one question sampled 100,000 times holds a fixed-size history', () => {
  const a = new Atlas();
  for (let s = 1; s <= 100_000; s++) a.add(train(s, { q: s % 4 }));
  const h = a.get('q')!;
  assert.equal(h.observations, 100_000);
  assert.ok(h.train.size <= SPARK_BUCKETS);
  assert.equal(h.category, 'unstable');
});

test('bounded memory: questions past the cap are counted as untracked, not kept', () => {
  const a = new Atlas(3);
  a.add(train(1, { a: 1, b: 1, c: 1, d: 1 }));
  a.add(train(2, { a: 1, e: 1 }));
  assert.equal(a.size, 3);
  assert.equal(a.counts.untracked, 2);
  assert.equal(a.get('a')!.observations, 2, 'tracked questions keep being followed');
});

test('a very long question is kept as a prefix and a hash; lookups by the whole question find it', () => {
  const long = 'x'.repeat(MAX_QUESTION_CHARS + 10);
  const other = 'x'.repeat(MAX_QUESTION_CHARS + 9) + 'y';
  const a = new Atlas();
  a.add(train(1, { [long]: 4, [other]: 0 }));
  assert.equal(a.size, 2, 'same prefix, different questions');
  assert.equal(a.get(long)!.category, 'always');
  assert.ok(questionKey(long).length < MAX_QUESTION_CHARS + 30);
});

test("findQuestionSteps: the steps that logged a group of the question, without decoding the groups", async () => {
  const dir = tmp();
  const g = (step: number, question: string) => line({ step, question, answer: '1', prompt: question, completions: ['a'], rewards: [1], advantages: [0] });
  fs.writeFileSync(path.join(dir, 'samples.jsonl'), g(1, 'what is "2+2"?') + g(5, 'other') + g(9, 'what is "2+2"?') + 'garbage\n');
  assert.deepEqual(await findQuestionSteps(dir, (q) => q === 'what is "2+2"?'), [1, 9]);
  assert.deepEqual(await findQuestionSteps(dir, (q) => q === 'none'), []);
  assert.deepEqual(await findQuestionSteps(tmp(), () => true), [], 'no samples.jsonl');
});
