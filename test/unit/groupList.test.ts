import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { isHostToInspector, isInspectorToHost } from '../../src/inspect/inspectorProtocol';
import { kindOfLine, listSampleGroups } from '../../src/rundir/runDir';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-groups-'));
/** A samples.jsonl line as the trainer writes it (json.dumps: ", " and ": " separators, step first). */
const line = (o: object) => JSON.stringify(o).replace(/,"/g, ', "').replace(/":/g, '": ') + '\n';
const group = (step: number, rewards: number[], extra: object = {}) => ({
  step, question: 'q "rewards": [9, 9]', answer: '1', prompt: 'p', completions: rewards.map(() => 'the "correct": [true] text'), rewards,
  advantages: rewards.map(() => 0), ...extra,
});

test("a line's kind: the trainer's `kind`, else derived from its rewards and `correct`, without decoding the line", () => {
  const b = (o: object) => Buffer.from(line(o));
  assert.equal(kindOfLine(b(group(1, [1, 0], { kind: 'all_wrong' }))), 'all_wrong', 'the written kind wins');
  assert.equal(kindOfLine(b(group(1, [1, 0], { correct: [true, false] }))), 'mixed');
  assert.equal(kindOfLine(b(group(1, [0, 0], { correct: [false, false] }))), 'all_wrong');
  assert.equal(kindOfLine(b(group(1, [1, 1], { correct: [true, true] }))), 'all_correct');
  assert.equal(kindOfLine(b(group(1, [0.5, 0.5], { correct: [true, false] }))), 'no_signal_other');
  // no `correct` (an imported TRL group): the reward's value says it
  assert.equal(kindOfLine(b(group(1, [0, 0]))), 'all_wrong');
  // compact JSON too; the texts that quote `"rewards": [9, 9]` and `"correct": [true]` are not the keys
  assert.equal(kindOfLine(Buffer.from(JSON.stringify(group(1, [1, 1], { correct: [false, false] })))), 'all_wrong');
  assert.equal(kindOfLine(Buffer.from('{"step": 1, "question": "no rewards"}')), null);
  assert.equal(kindOfLine(Buffer.from('[{"rewards": [1, 0]}]')), null, 'not an object');
  assert.equal(kindOfLine(b(group(1, [0, 0], { kind: 'bogus' }))), 'all_wrong', 'an unknown kind is derived instead');
});

test('the logged groups with their kinds, read incrementally as the file grows', async () => {
  const dir = tmp();
  const file = path.join(dir, 'samples.jsonl');
  fs.writeFileSync(file, line(group(2, [1, 0], { correct: [true, false] })) + line(group(4, [0, 0], { correct: [false, false], kind: 'all_wrong' })));
  assert.deepEqual(await listSampleGroups(dir), [{ step: 2, kind: 'mixed' }, { step: 4, kind: 'all_wrong' }]);
  const torn = line(group(6, [1, 1], { correct: [true, true] }));
  fs.appendFileSync(file, torn.slice(0, 20));
  assert.equal((await listSampleGroups(dir)).length, 2, 'a torn last line waits');
  fs.appendFileSync(file, torn.slice(20));
  assert.deepEqual((await listSampleGroups(dir)).map((g) => g.kind), ['mixed', 'all_wrong', 'all_correct']);
  fs.writeFileSync(file, line(group(1, [0, 0])));
  assert.deepEqual(await listSampleGroups(dir), [{ step: 1, kind: 'all_wrong' }], 'a replaced (shorter) file is read again');
  assert.deepEqual(await listSampleGroups(tmp()), []);
});

test("the inspector's group list messages are checked", () => {
  assert.ok(isHostToInspector({ type: 'logged', runDir: '/r', groups: [{ step: 1, kind: 'mixed' }, { step: 2, kind: null }] }));
  assert.ok(!isHostToInspector({ type: 'logged', runDir: '/r', groups: [{ step: 1, kind: 'none' }] }));
  assert.ok(!isHostToInspector({ type: 'logged', runDir: '/r', groups: [{ step: '1', kind: 'mixed' }] }));
  assert.ok(isInspectorToHost({ type: 'openLogged', step: 4 }));
  assert.ok(!isInspectorToHost({ type: 'openLogged', step: -1 }));
  assert.ok(!isInspectorToHost({ type: 'openLogged', step: 1.5 }));
});
