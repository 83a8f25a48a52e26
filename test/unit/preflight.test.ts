// Preflight in the Training view: its arguments, reading its answer (the generated guard), which settings a
// verdict belongs to (stale after a change), and Start's warning on a predicted dead or wasteful run.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IDLE_PREFLIGHT, isStale, preflightArgs, readPreflightAnswer, reportNumbers, settingsKey, startWarning, type PreflightState } from '../../src/training/preflight';
import { isHostToPanel, isPanelToHost } from '../../src/training/panelProtocol';
import { checkValues, defaultValues, EMBEDDED_SCHEMA, type CheckedValues } from '../../src/shared/settings';
import type { PreflightReport } from '../../src/shared/records';

const dead: PreflightReport = {
  verdict: 'dead', exit_code: 1,
  problems: [
    { code: 'truncation', severity: 'dead', message: '97% of completions hit max_completion_length before an answer', change: 'raise max_completion_length to 256' },
    { code: 'long_prompts', severity: 'note', message: '2 prompts are over max_prompt_length', change: 'raise max_prompt_length' },
  ],
  signal_share: 0.02, groups: { mixed: 1, all_wrong: 47 }, truncated_ratio: 0.97, truncated_without_answer: 0.95,
  reward: { mean: 0.01, std: 0.05, min: 0, max: 1 }, completion_length: { mean: 63.5, p10: 60, p50: 64, p90: 64, max: 64 },
  seconds_per_step: 3.2, estimated_total_seconds: 640, peak_memory_mb: 812.4, seconds: 21.3, questions: 48, num_generations: 8,
};
const checked = (v: Record<string, unknown>) => {
  const c = checkValues({ ...defaultValues(), ...v } as never);
  assert.ok(c.ok);
  return c.value as CheckedValues;
};
const done = (values: Record<string, unknown>, report: PreflightReport): PreflightState =>
  ({ ...IDLE_PREFLIGHT, status: 'done', key: settingsKey({ ...defaultValues(), ...values } as never), report });

test("preflight's arguments are train's settings arguments plus --json, as an array", () => {
  assert.deepEqual(preflightArgs(checked({})), ['-m', 'grpo', 'preflight', '--json']);
  const args = preflightArgs(checked({ max_completion_length: 16, task: 'my task; rm -rf /' }));
  assert.deepEqual(args.slice(0, 3), ['-m', 'grpo', 'preflight']);
  assert.equal(args[args.length - 1], '--json');
  assert.ok(args.includes('max_completion_length=16'));
  assert.ok(args.includes('task=my task; rm -rf /'), 'a value stays one argument, never shell text');
});

test('the answer: the last stdout line, checked with the generated guard', () => {
  const r = readPreflightAnswer(`progress noise\n${JSON.stringify(dead)}\n`, 1);
  assert.ok(r.ok);
  assert.equal(r.value.verdict, 'dead');
  const healthy = readPreflightAnswer(JSON.stringify({ verdict: 'healthy', exit_code: 0, problems: [] }), 0);
  assert.ok(healthy.ok);
});

test('an unreadable answer is a clear error', () => {
  const none = readPreflightAnswer('', 1, ['Traceback …', 'RuntimeError: out of memory']);
  assert.deepEqual(none, { ok: false, error: 'preflight printed no report (exit status 1): RuntimeError: out of memory' });
  const killed = readPreflightAnswer('', null);
  assert.ok(!killed.ok && /killed/.test(killed.error));
  const notJson = readPreflightAnswer('{"verdict": "dead"', 1);
  assert.ok(!notJson.ok && /not JSON/.test(notJson.error));
  const wrong = readPreflightAnswer(JSON.stringify({ verdict: 'fine', exit_code: 0, problems: [] }), 0);
  assert.ok(!wrong.ok && /unreadable: preflight report field 'verdict'/.test(wrong.error), !wrong.ok ? wrong.error : '');
  const badProblem = readPreflightAnswer(JSON.stringify({ ...dead, problems: [{ code: 'x', severity: 'fatal', message: 'm', change: 'c' }] }), 1);
  assert.ok(!badProblem.ok && /problems\[0\]\.severity/.test(badProblem.error));
  const contradicts = readPreflightAnswer(JSON.stringify({ verdict: 'healthy', exit_code: 0, problems: [] }), 1);
  assert.ok(!contradicts.ok && /says healthy but it exited with status 1/.test(contradicts.error));
  const crashed = readPreflightAnswer(JSON.stringify({ verdict: 'healthy', exit_code: 0, problems: [] }), 137);
  assert.ok(!crashed.ok && /exit status 137/.test(crashed.error));
});

test('exit status 2 without a report (the argument parser refused) is bad settings, naming why', () => {
  const r = readPreflightAnswer('', 2, ['usage: grpo preflight …', "grpo preflight: error: unknown setting 'foo'"]);
  assert.ok(r.ok);
  assert.equal(r.value.verdict, 'bad_settings');
  assert.match(r.value.error ?? '', /unknown setting 'foo'/);
  const reported = readPreflightAnswer(JSON.stringify({ verdict: 'bad_settings', exit_code: 2, problems: [], error: 'beta must be ≥ 0' }), 2);
  assert.ok(reported.ok && reported.value.error === 'beta must be ≥ 0');
});

test('a verdict belongs to exactly its settings: any change makes it stale', () => {
  const base = { ...defaultValues() };
  assert.equal(settingsKey(base), settingsKey({ ...base }));
  assert.equal(settingsKey({ ...base, beta: 0.1, max_steps: 5 }), settingsKey({ ...base, max_steps: 5, beta: 0.1 }), 'key order does not matter');
  assert.notEqual(settingsKey({ ...base, beta: 0.1 }), settingsKey(base));
  const s = done({ beta: 0.1 }, dead);
  assert.equal(isStale(s, settingsKey({ ...base, beta: 0.1 })), false);
  assert.equal(isStale(s, settingsKey({ ...base, beta: 0.2 })), true);
  assert.equal(isStale({ ...s, status: 'running' }, settingsKey(base)), false, 'a running preflight is not stale');
});

test('Start warns on a dead or wasteful verdict for exactly these settings, naming the problem', () => {
  const values = { ...defaultValues(), max_completion_length: 16 };
  const s = done({ max_completion_length: 16 }, dead);
  const w = startWarning(s, settingsKey(values));
  assert.ok(w);
  assert.match(w.title, /dead run with these settings: 97% of completions hit max_completion_length/);
  assert.match(w.detail, /→ raise max_completion_length to 256/);
  assert.doesNotMatch(w.detail, /max_prompt_length/, 'notes are not warnings');
  assert.equal(startWarning(s, settingsKey({ ...values, max_completion_length: 256 })), null, 'changed settings: no warning');
  const wasteful = startWarning(done({}, { ...dead, verdict: 'wasteful', problems: [{ code: 'all_correct', severity: 'wasteful', message: '80% of groups are all correct', change: 'use harder questions' }] }), settingsKey(defaultValues()));
  assert.match(wasteful?.title ?? '', /wasteful run .*80% of groups are all correct/);
  assert.equal(startWarning(done({}, { verdict: 'healthy', exit_code: 0, problems: [] }), settingsKey(defaultValues())), null);
  assert.equal(startWarning({ ...IDLE_PREFLIGHT }, settingsKey(defaultValues())), null);
});

test("the report's numbers, as the view shows them", () => {
  const n = Object.fromEntries(reportNumbers(dead));
  assert.equal(n['signal share'], '2.0% of groups (mixed 1, all wrong 47)');
  assert.equal(n.truncation, '97% (95% before any answer)');
  assert.equal(n.reward, 'mean 0.01 ± 0.05, 0 to 1');
  assert.equal(n['completion length'], 'mean 63.5, p10 60, p50 64, p90 64, max 64 tokens');
  assert.equal(n['seconds per step'], '3.2 s (whole run ≈ 10m40s)');
  assert.equal(n['peak memory'], '812 MB');
  assert.equal(Object.fromEntries(reportNumbers({ ...dead, peak_memory_mb: null }))['peak memory'], 'unknown');
});

test("the training view's preflight messages are validated both ways", () => {
  assert.ok(isPanelToHost({ type: 'preflight', values: { beta: 0.1 } }));
  assert.ok(isPanelToHost({ type: 'cancelPreflight' }));
  assert.ok(!isPanelToHost({ type: 'preflight', values: { beta: [1] } }));
  const state = done({}, dead);
  assert.ok(isHostToPanel({ type: 'preflight', preflight: state }));
  assert.ok(!isHostToPanel({ type: 'preflight', preflight: { ...state, status: 'great' } }));
  assert.ok(!isHostToPanel({ type: 'preflight', preflight: { ...state, report: { verdict: 'dead' } } }), 'a report without its fields');
  assert.ok(isHostToPanel({ type: 'init', schema: EMBEDDED_SCHEMA, values: defaultValues(), trusted: true, summary: null, preflight: IDLE_PREFLIGHT }));
});
