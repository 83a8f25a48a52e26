// Reward tests from the inspector, the parts without vscode: a completion as a check-rewards case (read back
// by the trainer's own reader where .venv exists), the typed reward, the file kept inside the workspace
// (symlinks out refused, in followed), and check-rewards' JSON report.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { appendCase, describeOutcome, parseExpected, readCheckReport, resolveTestsFile, rewardTestCase, RewardTestFileError } from '../../src/inspect/rewardTestFile';
import type { GroupRecord } from '../../src/shared/records';

const root = path.join(__dirname, '..', '..');
const python = path.join(root, '.venv', 'bin', 'python');
const group: GroupRecord = {
  step: 3, question: '3+4', answer: '7', prompt: 'Q: 3+4\nA:', completions: ['7', '3+4=8 #### 8'], rewards: [0.95, -0.1], advantages: [1, -1],
  reward_functions: { accuracy: [1, 0], length_penalty: [-0.1, null] },
};
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-rt-'));

test('a completion becomes a check-rewards case: question, answer, completion, expected, rewards per function', () => {
  const c = rewardTestCase(group, 1, 0, 'tiny training step 3');
  assert.deepEqual(c, { question: '3+4', answer: '7', completion: '3+4=8 #### 8', expected: 0, rewards: { accuracy: 0, length_penalty: null }, step: 2, note: 'tiny training step 3, completion 1: reward -0.1' });
  const single = rewardTestCase({ ...group, reward_functions: undefined, step: undefined }, 0, 1, 's');
  assert.deepEqual(single.rewards, { reward: 0.95 });
  assert.equal(single.step, undefined);
  assert.throws(() => rewardTestCase(group, 2, 0, 's'), RangeError);
});

test('the typed reward must be a finite number', () => {
  assert.deepEqual(parseExpected(' 1 '), { ok: true, value: 1 });
  assert.deepEqual(parseExpected('-0.5'), { ok: true, value: -0.5 });
  assert.deepEqual(parseExpected('−2'), { ok: true, value: -2 });
  assert.deepEqual(parseExpected('1e-3'), { ok: true, value: 0.001 });
  for (const bad of ['', 'one', '0x10', 'Infinity', 'NaN', '1,5', '1e999']) assert.equal(parseExpected(bad).ok, false, bad);
});

test('cases are appended to a file in the workspace, created if absent, a missing last newline added', () => {
  const ws = tmp();
  const a = appendCase(ws, 'reward-tests.jsonl', rewardTestCase(group, 0, 1, 's'));
  assert.equal(a.file, path.join(fs.realpathSync(ws), 'reward-tests.jsonl'));
  assert.equal(a.line, 1);
  fs.appendFileSync(a.file, '{"completion": "x", "expected": 0}'); // no newline
  const b = appendCase(ws, '', rewardTestCase(group, 1, 0, 's'));
  assert.equal(b.line, 3);
  const lines = fs.readFileSync(a.file, 'utf8').split('\n');
  assert.equal(lines.length, 4);
  assert.equal(JSON.parse(lines[2]).completion, '3+4=8 #### 8');
  fs.mkdirSync(path.join(ws, 'tests'));
  assert.equal(appendCase(ws, 'tests/r.jsonl', rewardTestCase(group, 0, 1, 's')).line, 1);
});

test('the file never leads out of the workspace: outside paths and symlinks out are refused, symlinks inside followed', () => {
  const ws = tmp();
  const outside = tmp();
  fs.writeFileSync(path.join(outside, 'x.jsonl'), '');
  assert.throws(() => resolveTestsFile(ws, '../x.jsonl'), /outside the workspace/);
  assert.throws(() => resolveTestsFile(ws, path.join(outside, 'x.jsonl')), /outside the workspace/);
  fs.symlinkSync(path.join(outside, 'x.jsonl'), path.join(ws, 'reward-tests.jsonl'));
  assert.throws(() => appendCase(ws, 'reward-tests.jsonl', rewardTestCase(group, 0, 1, 's')), RewardTestFileError);
  assert.equal(fs.readFileSync(path.join(outside, 'x.jsonl'), 'utf8'), '', 'nothing written out there');
  fs.symlinkSync(outside, path.join(ws, 'out'));
  assert.throws(() => resolveTestsFile(ws, 'out/new.jsonl'), /leads out of the workspace/);
  assert.throws(() => resolveTestsFile(ws, 'missing/new.jsonl'), /does not exist/);
  fs.writeFileSync(path.join(ws, 'real.jsonl'), '');
  fs.symlinkSync('real.jsonl', path.join(ws, 'link.jsonl'));
  assert.equal(appendCase(ws, 'link.jsonl', rewardTestCase(group, 0, 1, 's')).file, path.join(fs.realpathSync(ws), 'real.jsonl'));
  fs.symlinkSync(path.join(ws, 'nowhere'), path.join(ws, 'dangling.jsonl'));
  assert.throws(() => resolveTestsFile(ws, 'dangling.jsonl'), /symlink to nothing/);
  fs.mkdirSync(path.join(ws, 'dir.jsonl'));
  assert.throws(() => resolveTestsFile(ws, 'dir.jsonl'), /not a file/);
});

test('the trainer reads a saved case as a case, its columns as written', { skip: !fs.existsSync(python) && 'no .venv' }, () => {
  const ws = tmp();
  const { file } = appendCase(ws, 'reward-tests.jsonl', rewardTestCase(group, 1, 0, 's'));
  const out = execFileSync(python, ['-c', 'import json,sys; from grpo.rewardtests import read_cases; c, bad = read_cases(sys.argv[1]); print(json.dumps([len(c), bad, c[0][1]["rewards"]]))', file],
    { env: { ...process.env, PYTHONPATH: path.join(root, 'trainer') }, encoding: 'utf8' });
  assert.deepEqual(JSON.parse(out), [1, {}, { accuracy: 0, length_penalty: null }]);
});

test("check-rewards' JSON report is read, and a disagreeing case is described as expected vs got", () => {
  const rep = { file: 'f', reward_funcs: ['accuracy', 'length_penalty'], cases: 2, agree: 1, disagree: 1, skipped: 0, bad: {},
    results: [{ line: 1, ok: true, expected: 1, reward: 1, components: { accuracy: 1 }, saved: {}, errors: [] },
      { line: 2, ok: false, expected: 0, reward: 0.95, components: { accuracy: 1, length_penalty: -0.1 }, saved: { accuracy: 1, length_penalty: null }, errors: [], note: 'n' }] };
  const r = readCheckReport(`noise\n${JSON.stringify(rep)}\n`);
  assert.ok(r.ok);
  assert.deepEqual(describeOutcome(r.value.results[1]), { label: 'line 2: expected 0, got 0.95', detail: 'accuracy 1 (saved 1), length_penalty -0.1 (saved none) · n' });
  assert.equal(readCheckReport('').ok, false);
  assert.equal(readCheckReport('{"results": [1]}').ok, false);
});

test('the inspector asks the host to save completion i as a reward test: a whole index ≥ 0 only', async () => {
  const { isInspectorToHost } = await import('../../src/inspect/inspectorProtocol');
  assert.equal(isInspectorToHost({ type: 'saveRewardTest', index: 2 }), true);
  for (const index of [-1, 1.5, '2', null]) assert.equal(isInspectorToHost({ type: 'saveRewardTest', index }), false);
});
