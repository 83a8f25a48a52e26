/**
 * The real trainer through RunSession: spawned with an argument array, live stream parsed, control over
 * stdin (pause → inspection requests while paused → resume → stop), run directory re-read. Skipped until trainer/grpo/__main__.py exists.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { isPidAlive, listCheckpoints, listSampleSteps, readMetrics, readStartEval, readStatus, withStartRow } from '../../src/rundir/runDir';
import { RunSession, type SessionChange } from '../../src/training/session';
import { checkValues, trainArgs } from '../../src/shared/settings';

const repo = path.resolve(__dirname, '../..');
const trainerDir = path.join(repo, 'trainer');
const python = process.env.GRPO_TEST_PYTHON ?? path.join(repo, '.venv', 'bin', 'python');
const ready = fs.existsSync(path.join(trainerDir, 'grpo', '__main__.py')) && fs.existsSync(python);

function until(what: string, fn: () => boolean, ms: number): Promise<void> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => (fn() ? resolve() : Date.now() - t0 > ms ? reject(new Error(`timed out waiting for ${what}`)) : setTimeout(tick, 100));
    tick();
  });
}

test('a short real run: live metrics, pause/resume/stop over stdin, checkpoint on stop', { skip: !ready && 'trainer CLI or .venv not there yet', timeout: 600_000 }, async () => {
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-session-')), 'run');
  const changes: SessionChange[] = [];
  const values = { max_steps: 40, sft_steps: 10, num_generations: 4, questions_per_step: 2, eval_steps: 0, eval_size: 8, eval_samples: 0, save_steps: 0, log_samples_steps: 2 };
  const checked = checkValues(values);
  assert.ok(checked.ok, checked.ok ? '' : checked.error);
  const s = RunSession.spawn(dir, python, trainArgs({ runDir: dir, values: checked.value }), { workspace: repo, trainerDir }, { onChange: (c) => changes.push(c) });
  try {
    await until('two GRPO steps', () => s.rows.filter((r) => r.step > 0).length >= 2 || s.ended, 300_000);
    assert.ok(!s.ended, `the trainer exited early: ${s.exitError} ${s.stderrLines().slice(-5).join(' | ')}`);
    assert.equal(changes.filter((c) => c.kind === 'problem').length, 0, JSON.stringify(changes.filter((c) => c.kind === 'problem')));
    assert.equal(s.control('pause'), 'sent');
    await until('paused', () => s.status?.state === 'paused', 120_000);
    const pausedAt = s.rows.length;
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(s.rows.length, pausedAt, 'no steps while paused');
    // Inspection requests go to the live trainer over stdin and are answered while it is paused.
    assert.ok(s.canRequest);
    const g = await s.request('sample_group', { question: '(3+1)*3', num_generations: 2, max_completion_length: 12, seed: 3 });
    assert.equal(g.completions.length, 2);
    assert.equal(g.answer, '12');
    assert.equal(g.source?.checkpoint, null, 'answered by the live policy, not a checkpoint');
    const sc = await s.request('score', { text: '3+1=4', prompt: '(3+1)*3\n' });
    assert.deepEqual(sc.offsets, [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]]);
    await assert.rejects(s.request('score', { text: '3+1=☃' }), /☃/);
    assert.equal(s.rows.length, pausedAt, 'requests do not step the run');
    assert.equal(s.control('resume'), 'sent');
    await until('stepping again', () => s.rows.length > pausedAt, 120_000);
    assert.equal(s.control('stop'), 'sent');
    await until('exit', () => s.ended, 120_000);
  } finally {
    if (s.pid && isPidAlive(s.pid) && !s.ended) process.kill(s.pid, 'SIGKILL');
  }
  assert.equal(s.exitError, null);
  await assert.rejects(s.request('score', { text: 'ab' }), /not being trained by this window/);
  const st = readStatus(dir);
  assert.ok(st?.ok && st.value.state === 'stopped', JSON.stringify(st));
  assert.ok(st.value.last_checkpoint && listCheckpoints(dir).length >= 2, 'step 0 and the stop checkpoint');
  const { rows, problems } = await readMetrics(dir);
  assert.deepEqual(problems, []);
  // the start's held-out evaluation (the step-0 eval event) leads the rows, live and read back, so the
  // held-out chart begins where GRPO starts
  assert.equal(s.rows[0].step, 0);
  assert.equal(typeof s.rows[0]['eval/accuracy'], 'number');
  assert.ok(!rows.some((r) => r.step === 0), 'metrics.jsonl itself has GRPO steps only');
  const read = withStartRow(rows, await readStartEval(dir));
  assert.deepEqual(read.map((r) => r.step), s.rows.map((r) => r.step), 'the stream and the run directory agree');
  assert.deepEqual(read[0], s.rows[0]);
  assert.ok(s.summary().reward !== null);
  // each group the run logged also arrived live, as it was logged (its `samples` message)
  const logged = await listSampleSteps(dir);
  assert.ok(logged.length >= 2, `groups logged at steps ${logged}`);
  assert.deepEqual(changes.flatMap((c) => (c.kind === 'group' ? [c.group.step] : [])), logged);
  assert.equal(s.latestGroup?.step, logged.at(-1));
});
