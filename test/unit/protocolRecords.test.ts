import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { checkEvent, checkMetricsRow, checkStatus, checkTrainerMessage, isControlRequest, METRIC_KEYS, RUN_STATES } from '../../src/shared/records';

test('src/shared/generated/protocol.ts is what trainer/grpo/records.py generates now', () => {
  const out = execFileSync(process.execPath, ['scripts/gen-protocol.mjs', '--check'], { encoding: 'utf8' });
  assert.match(out, /up to date/);
});

const status = { protocol: 1, state: 'running', phase: 'grpo', pid: 7, step: 3, max_steps: 10 };

test('status: absent optional fields get their defaults, unknown ones are kept, known ones are typed', () => {
  const s = checkStatus({ ...status, future: { a: 1 } });
  assert.ok(s.ok);
  assert.equal(s.value.started_at, null);
  assert.equal(s.value.last_checkpoint, null);
  assert.deepEqual((s.value as unknown as { future: unknown }).future, { a: 1 });
  assert.deepEqual(checkStatus({ ...status, state: 'sleeping' }), { ok: false, error: "status field 'state' is missing or invalid" });
  assert.deepEqual(checkStatus({ ...status, step: 2.5 }), { ok: false, error: "status field 'step' is missing or invalid" });
  assert.deepEqual(checkStatus({ ...status, grpo_elapsed: 'long' }), { ok: false, error: "status field 'grpo_elapsed' is missing or invalid" });
  assert.deepEqual(RUN_STATES, ['running', 'paused', 'stopped', 'finished', 'failed']);
});

test('metrics rows: every value a number or null, new metrics included', () => {
  assert.ok(checkMetricsRow({ step: 1, kl: null, 'clip_ratio/region': 0.1, 'pass@4': 0.5 }).ok);
  assert.deepEqual(checkMetricsRow({ step: 1, 'pass@4': 'x' }), { ok: false, error: "metrics row field 'pass@4' is not a finite number or null" });
  assert.ok(METRIC_KEYS.includes('clip_ratio/region') && METRIC_KEYS.includes('process_reward/mean') && !METRIC_KEYS.includes('step'));
});

test('events are checked by kind; an unknown kind is kept with only the common fields checked', () => {
  const e = { time: 1, step: 0 };
  assert.ok(checkEvent({ ...e, kind: 'phase', phase: 'grpo', sft_accuracy: 0.5 }).ok);
  assert.deepEqual(checkEvent({ ...e, kind: 'phase', phase: 'grpo', sft_accuracy: '50%' }), { ok: false, error: "event field 'sft_accuracy' is missing or invalid" });
  assert.deepEqual(checkEvent({ ...e, kind: 'checkpoint' }), { ok: false, error: "event field 'path' is missing or invalid" });
  assert.deepEqual(checkEvent({ ...e, kind: 'control', action: 'jump' }), { ok: false, error: "event field 'action' is missing or invalid" });
  assert.ok(checkEvent({ ...e, kind: 'resume', dropped_rows: 2 }).ok);
  assert.ok(checkEvent({ ...e, kind: 'from_the_future', anything: [1, 'x'] }).ok);
  assert.ok(!checkEvent({ kind: 'from_the_future', step: 0 }).ok, 'time is common to every kind');
});

test('stream messages: the nested record is checked, defaults are filled in, unknown types are refused', () => {
  const m = checkTrainerMessage({ v: 1, type: 'status', status });
  assert.ok(m.ok && m.value.type === 'status' && m.value.status.error === null);
  const bad = checkTrainerMessage({ v: 1, type: 'event', row: { kind: 'eval', time: 1, step: 2, n: 4 } });
  assert.deepEqual(bad, { ok: false, error: "'event' message field 'row.accuracy' is missing or invalid" });
  const samples = checkTrainerMessage({ v: 1, type: 'samples', row: { step: 1 } });
  assert.ok(!samples.ok && /'row\.question'/.test(samples.error), 'a samples row is a whole group');
  const r = checkTrainerMessage({ v: 1, type: 'response', ok: false, error: 'no' });
  assert.ok(r.ok && r.value.type === 'response' && r.value.id === null);
  assert.deepEqual(checkTrainerMessage({ v: 1, type: 'later' }), { ok: false, error: 'unknown message type "later"' });
});

test('control requests', () => {
  assert.ok(isControlRequest({ v: 1, type: 'pause', id: 'a' }));
  assert.ok(!isControlRequest({ v: 1, type: 'pause', id: 3 }));
  assert.ok(!isControlRequest({ v: 1, type: 'sample_group' }));
  assert.ok(!isControlRequest({ v: 2, type: 'stop' }));
});
