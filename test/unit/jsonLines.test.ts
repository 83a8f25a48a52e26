import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LineSplitter, parseJsonlBuffer, TrainerStreamParser, type LineProblem } from '../../src/shared/jsonLines';
import type { TrainerMessage } from '../../src/shared/records';

const status = { protocol: 1, state: 'running', phase: 'sft', pid: 42, step: 0, max_steps: 10, sft_step: 3, sft_steps: 20, started_at: 1, updated_at: 2, ended_at: null, last_checkpoint: null, error: null };
const lines = [
  JSON.stringify({ v: 1, type: 'started', run_dir: '/r', pid: 42, config: { beta: 0.04 }, resumed_from: null }),
  JSON.stringify({ v: 1, type: 'status', status }),
  JSON.stringify({ v: 1, type: 'progress', phase: 'sft', step: 3, total: 20, loss: 1.5 }),
  JSON.stringify({ v: 1, type: 'metrics', row: { step: 1, 'reward/mean': 0.5, kl: null } }),
  JSON.stringify({ v: 1, type: 'event', row: { kind: 'checkpoint', time: 3, step: 1, path: 'checkpoints/step_000001' } }),
  JSON.stringify({ v: 1, type: 'response', id: 'a', ok: false, error: 'unknown request' }),
];

function run(chunks: string[], end = true) {
  const msgs: TrainerMessage[] = [];
  const problems: LineProblem[] = [];
  const p = new TrainerStreamParser((m) => msgs.push(m), (x) => problems.push(x));
  chunks.forEach((c) => p.push(c));
  if (end) p.end();
  return { msgs, problems };
}

test('every message type parses, whatever the chunk boundaries', () => {
  const text = lines.join('\n') + '\n';
  for (let cut = 0; cut <= text.length; cut += 7) {
    const { msgs, problems } = run([text.slice(0, cut), text.slice(cut)]);
    assert.deepEqual(problems, []);
    assert.deepEqual(msgs.map((m) => m.type), ['started', 'status', 'progress', 'metrics', 'event', 'response']);
  }
});

test('garbage lines are reported with their line number and parsing carries on', () => {
  const text = ['Traceback (most recent call last):', lines[3], '{"v": 1, "type": "metrics", "row": {"step": "x"}}', '{"v": 2, "type": "status"}', '[1,2]', '{"v":1,"type":"nope"}', lines[4], ''].join('\n');
  const { msgs, problems } = run([text]);
  assert.deepEqual(msgs.map((m) => m.type), ['metrics', 'event']);
  assert.deepEqual(problems.map((p) => p.line), [1, 3, 4, 5, 6]);
  assert.match(problems[0].error, /not JSON/);
  assert.match(problems[1].error, /step/);
  assert.match(problems[2].error, /version/);
  assert.match(problems[4].error, /unknown message type/);
});

test('a torn last line is held back until its newline arrives, and reported if the stream ends', () => {
  const half = lines[3].slice(0, 20);
  const a = run([lines[1] + '\n' + half], false);
  assert.equal(a.msgs.length, 1);
  assert.equal(a.problems.length, 0);
  const b = run([lines[1] + '\n' + half, lines[3].slice(20) + '\n']);
  assert.deepEqual(b.msgs.map((m) => m.type), ['status', 'metrics']);
  const c = run([lines[1] + '\n' + half]);
  assert.equal(c.problems.length, 1);
  assert.match(c.problems[0].error, /torn/);
});

test('CRLF line endings and blank lines are accepted', () => {
  const { msgs, problems } = run([lines[0] + '\r\n\r\n' + lines[1] + '\r\n']);
  assert.equal(msgs.length, 2);
  assert.equal(problems.length, 0);
});

test('LineSplitter keeps the unterminated rest', () => {
  const s = new LineSplitter();
  assert.deepEqual(s.push('a\nb'), ['a']);
  assert.deepEqual(s.push('c\n'), ['bc']);
  assert.equal(s.end(), null);
  s.push('tail');
  assert.equal(s.end(), 'tail');
});

test('parseJsonlBuffer decodes only whole lines (a multi-byte character split mid-write stays intact)', () => {
  const row = JSON.stringify({ step: 1, note: 'π≈3.14 ✓' }) + '\n';
  const bytes = Buffer.from(row + row);
  const cut = bytes.indexOf(Buffer.from('✓'), row.length) + 1; // inside the 3-byte ✓ of the 2nd line
  const first = parseJsonlBuffer(bytes.subarray(0, cut), (v) => ({ ok: true, value: v }));
  assert.equal(first.records.length, 1);
  assert.equal(first.tornTail, true);
  assert.equal(first.consumed, Buffer.byteLength(row));
  const rest = parseJsonlBuffer(bytes.subarray(first.consumed), (v) => ({ ok: true, value: v }), 2);
  assert.deepEqual(rest.records, [{ step: 1, note: 'π≈3.14 ✓' }]);
});
