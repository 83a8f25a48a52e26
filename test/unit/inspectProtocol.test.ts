import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkCompareResult, checkGroupRecord, checkScoreResult, checkTrainerMessage, encodeRequest, type TrainerMessage } from '../../src/shared/records';
import { isHostToInspector, isInspectorToHost } from '../../src/inspect/inspectorProtocol';
import { PendingRequests, TrainerGoneError, TrainerRequestError } from '../../src/shared/requests';

const tokens = (n: number) => ({ text: Array(n).fill('1'), logp: Array(n).fill(-1), old_logp: Array(n).fill(-1), ref_logp: Array(n).fill(-1.1), kl: Array(n).fill(0.004), advantage: Array(n).fill(0.5), entropy: Array(n).fill(1) });
const group = () => ({
  step: 4, question: '1+2', answer: '3', prompt: '1+2\n', completions: ['3', '4'], rewards: [1, 0], correct: [true, false], advantages: [0.7, -0.7],
  truncated: [false, false], tokens: [tokens(2), tokens(2)], step_rewards: [[1], [0]], step_ends: [[0], [0]], source: { checkpoint: '/r/checkpoints/step_000004', step: 4, seed: 7 },
});

test('a group in the samples.jsonl shape passes; inconsistent lengths are named', () => {
  assert.ok(checkGroupRecord(group()).ok);
  const short = { ...group(), rewards: [1] };
  assert.deepEqual(checkGroupRecord(short), { ok: false, error: "group field 'rewards' has 1 entries for 2 completions" });
  const g = group();
  g.tokens[1].kl = [0];
  assert.deepEqual(checkGroupRecord(g), { ok: false, error: "group field 'tokens[1].kl' has 1 values for 2 tokens" });
  assert.match((checkGroupRecord({ ...group(), question: 3 }) as { error: string }).error, /'question'/);
  assert.ok(checkGroupRecord({ ...group(), source: { checkpoint: null, step: null } }).ok, 'the live trainer has no checkpoint path');
});

test('score and compare results are checked field by field', () => {
  const s = { tokens: ['a', 'b'], offsets: [[1, 2], [2, 3]], logp: [-1, -2], ref_logp: [-1, -1], kl: [0, 0.3], entropy: [1, 1], sequence_kl: 0.15, sum_logp: -3, sum_ref_logp: -2, step: 0 };
  assert.ok(checkScoreResult(s).ok);
  assert.match((checkScoreResult({ ...s, offsets: [[1, 2]] }) as { error: string }).error, /'offsets' has 1 values for 2 tokens/);
  const side = { completion: 'ab', tokens: ['a', 'b'], logp: [-1, -1], kl: [0, 0], logp_diff: [0, 0] };
  const c = { question: 'q', prompt: 'q\n', policy: { ...side, ref_logp: [-1, -1] }, reference: { ...side, policy_logp: [-1, -1] }, sequence_kl: { policy: 0, reference: 0 } };
  assert.ok(checkCompareResult(c).ok);
  assert.match((checkCompareResult({ ...c, reference: side }) as { error: string }).error, /'reference\.policy_logp'/);
});

test("serve's readiness line is a 'started' message without config", () => {
  const m = checkTrainerMessage({ v: 1, type: 'started', checkpoint: '/r/checkpoints/step_000001', step: 1, pid: 9, run_dir: '/r' });
  assert.ok(m.ok && m.value.type === 'started' && m.value.checkpoint === '/r/checkpoints/step_000001');
});

test('requests are one stdin line with the envelope last (a param cannot override it)', () => {
  const line = encodeRequest('sample_group', 'x-1', { question: '1+2', num_generations: 4 });
  assert.ok(line.endsWith('\n'));
  assert.deepEqual(JSON.parse(line), { question: '1+2', num_generations: 4, v: 1, type: 'sample_group', id: 'x-1' });
});

test('inspector messages are validated both ways', () => {
  const origin = { runDir: '/r', checkpoint: null, step: 3, logged: true };
  assert.ok(isHostToInspector({ type: 'group', group: group(), origin, title: 't', focus: null, quantity: 'kl', follow: null }));
  assert.ok(isHostToInspector({ type: 'group', group: group(), origin, title: 't', focus: null, quantity: null, follow: true }));
  assert.ok(!isHostToInspector({ type: 'group', group: group(), origin, title: 't', focus: null, quantity: 'loss', follow: null }));
  assert.ok(!isHostToInspector({ type: 'group', group: group(), origin, title: 't', focus: null, quantity: 'kl' }), 'follow is always said');
  assert.ok(isInspectorToHost({ type: 'follow', on: false }));
  assert.ok(!isInspectorToHost({ type: 'follow', on: 'yes' }));
  assert.ok(isInspectorToHost({ type: 'log', level: 'error', message: 'm' }));
  assert.ok(!isInspectorToHost({ type: 'log', level: 'debug', message: 'm' }));
  assert.ok(isInspectorToHost({ type: 'openCompletion', index: 1 }));
  assert.ok(!isInspectorToHost({ type: 'openCompletion', index: -1 }));
  assert.ok(!isInspectorToHost({ type: 'openCompletion', index: 0.5 }));
});

const response = (id: string, ok: boolean, body: Record<string, unknown>): TrainerMessage => ({ v: 1, type: 'response', id, ok, ...body }) as TrainerMessage;

test('answers are matched by id and validated; ok:false is a request error with the trainer message', async () => {
  const p = new PendingRequests('t');
  const lines: string[] = [];
  const write = (l: string) => (lines.push(l), true);
  const a = p.send('sample_group', { question: '1+2' }, write, 5000, 'serve');
  const b = p.send('sample_group', { question: '¤' }, write, 5000, 'serve');
  const c = p.send('score', { text: 'x' }, write, 5000, 'serve');
  const ids = lines.map((l) => JSON.parse(l).id as string);
  assert.equal(new Set(ids).size, 3);
  assert.equal(p.handle(response('other', true, { result: {} })), false, 'an unknown id is not ours');
  assert.ok(p.handle(response(ids[1], false, { error: "question: characters outside the model's vocabulary: '¤'" })));
  assert.ok(p.handle(response(ids[0], true, { result: group() })));
  assert.ok(p.handle(response(ids[2], true, { result: { tokens: [] } })));
  assert.equal((await a).question, '1+2');
  await assert.rejects(b, (e: Error) => e instanceof TrainerRequestError && /outside the model's vocabulary: '¤'/.test(e.message));
  await assert.rejects(c, (e: Error) => e instanceof TrainerGoneError && /answer to score is invalid/.test(e.message));
  assert.equal(p.size, 0);
});

test('a process that dies fails every open request, naming what it was answering; timeouts and a dead stdin too', async () => {
  const p = new PendingRequests('t');
  const a = p.send('compare', { question: 'q' }, () => true, 5000, 'serve');
  p.failAll((type) => `serve exited with code 1 while answering ${type}`);
  await assert.rejects(a, /serve exited with code 1 while answering compare/);
  await assert.rejects(p.send('score', { text: 'x' }, () => false, 5000, 'serve'), /serve is not running, so score could not be sent/);
  await assert.rejects(p.send('score', { text: 'x' }, () => true, 20, 'serve'), /serve did not answer score within 0 s/);
  assert.equal(p.size, 0);
});
