import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import {
  checkUserCodeReport, configKey, describeModule, IMPORT_AND_OPEN, IMPORT_AND_RESUME, OPEN_WITHOUT, openQuestion, parseUserCodeOutput, queryUserCode,
  resumeQuestion, UserCodeAnswers, UserCodeQueryError, type UserCodeModule, type UserCodeReport,
} from '../../src/rundir/userCode';

const repo = path.resolve(__dirname, '../..');
const trainerDir = path.join(repo, 'trainer');
const venvPython = process.env.GRPO_TEST_PYTHON ?? path.join(repo, '.venv', 'bin', 'python');
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-usercode-'));

const rewards: UserCodeModule = { setting: 'reward_function', spec: 'my_rewards:score', module: 'my_rewards', attr: 'score', origin: '/ws/my_rewards.py', refused: null };
const payload: UserCodeModule = {
  setting: 'task', spec: 'runs.payload:make', module: 'runs.payload', attr: 'make', origin: '/ws/runs/payload.py',
  refused: "setting 'task' names 'runs.payload:make', whose module 'runs.payload' is /ws/runs/payload.py, beside the run directory /ws/runs/shared (in /ws/runs): a run directory never supplies code",
};
const report = (...modules: UserCodeModule[]): UserCodeReport => ({ run_dir: '/ws/runs/shared', modules });

test("user-code's answer is validated: every field typed, bounded, unknown fields dropped", () => {
  const ok = checkUserCodeReport({ run_dir: '/ws/runs/shared', modules: [{ ...rewards, extra: 1 }], more: true });
  assert.ok(ok.ok);
  assert.deepEqual(ok.value, report(rewards), 'unknown fields dropped');
  assert.ok(checkUserCodeReport({ run_dir: null, modules: [] }).ok, 'a checkpoint outside any run names nothing');
  const bad: [unknown, RegExp][] = [
    [null, /not an object/],
    [[report(rewards)], /not an object/],
    [{ run_dir: 3, modules: [] }, /run_dir/],
    [{ run_dir: null }, /'modules' must be a list/],
    [{ run_dir: null, modules: [42] }, /modules\[0\] is not an object/],
    [{ run_dir: null, modules: [{ ...rewards, setting: '' }] }, /modules\[0\]\.setting/],
    [{ run_dir: null, modules: [{ ...rewards, module: undefined }] }, /modules\[0\]\.module/],
    [{ run_dir: null, modules: [{ ...rewards, origin: 7 }] }, /modules\[0\]\.origin/],
    [{ run_dir: null, modules: [{ ...rewards, refused: false }] }, /modules\[0\]\.refused/],
    [{ run_dir: null, modules: [{ ...rewards, spec: 'x'.repeat(70_000) }] }, /modules\[0\]\.spec/],
    [{ run_dir: null, modules: Array(40).fill(rewards) }, /40 modules/],
  ];
  for (const [v, want] of bad) {
    const r = checkUserCodeReport(v);
    assert.ok(!r.ok, JSON.stringify(v)?.slice(0, 80));
    assert.match(r.error, want);
  }
});

test("user-code's stdout: the JSON line is found among others; no line or garbage is an error", () => {
  const out = `some warning\n${JSON.stringify(report(rewards))}\n`;
  assert.deepEqual(parseUserCodeOutput(out), { ok: true, value: report(rewards) });
  assert.match((parseUserCodeOutput('nothing here\n') as { error: string }).error, /no JSON line/);
  assert.match((parseUserCodeOutput('{"run_dir": \n') as { error: string }).error, /not JSON/);
  assert.match((parseUserCodeOutput('{"run_dir": null}\n') as { error: string }).error, /modules/);
});

test('the open question names each module, its setting and its file; a refused module leaves only "Open Without It"', () => {
  assert.equal(openQuestion('shared', report()), null, 'no user code: nothing to ask');
  const q = openQuestion('shared', report(rewards))!;
  assert.equal(q.message, "Run 'shared' names user code");
  assert.match(q.detail, /^reward_function = my_rewards:score → imports my_rewards from \/ws\/my_rewards\.py$/m);
  assert.deepEqual(q.actions, [IMPORT_AND_OPEN, OPEN_WITHOUT]);

  const r = openQuestion('shared', report(payload, rewards))!;
  assert.match(r.detail, /^task = runs\.payload:make → refused: .*a run directory never supplies code$/m);
  assert.match(r.detail, /^reward_function = my_rewards:score → imports my_rewards from \/ws\/my_rewards\.py$/m, 'the other module is still listed');
  assert.deepEqual(r.actions, [OPEN_WITHOUT]);

  const missing = openQuestion('shared', report({ ...rewards, origin: null }))!;
  assert.match(missing.detail, /imports my_rewards, which is not found/);
  const long = describeModule({ ...rewards, origin: `/${'d/'.repeat(2000)}x.py` });
  assert.ok(long.length < 800, 'a long path is clipped in the dialog');
});

test('the resume question offers only "Import and Resume"; a refused module is an error naming it', () => {
  assert.equal(resumeQuestion('shared', report()), null);
  const q = resumeQuestion('shared', report(rewards));
  assert.ok(q?.kind === 'ask');
  assert.deepEqual(q.question.actions, [IMPORT_AND_RESUME]);
  assert.match(q.question.detail, /reward_function = my_rewards:score → imports my_rewards from \/ws\/my_rewards\.py/);
  const r = resumeQuestion('shared', report(rewards, payload));
  assert.ok(r?.kind === 'refused');
  assert.match(r.error, /^GRPO: run shared names user code the trainer refuses to import \(task = runs\.payload:make → refused: .*\); it was not resumed\.$/);
  assert.doesNotMatch(r.error, /my_rewards/, 'only the refused module is named');
});

test('answers are remembered per run directory, and asked again when the code the run names changes', () => {
  const a = new UserCodeAnswers();
  assert.equal(a.choice('/ws/runs/shared', report(rewards)), undefined);
  a.remember('/ws/runs/shared', report(rewards), 'without');
  assert.equal(a.choice('/ws/runs/shared/', report(rewards)), 'without', 'the same directory, however written');
  assert.equal(a.choice('/ws/runs/other', report(rewards)), undefined, 'per run directory');
  assert.equal(a.choice('/ws/runs/shared', report({ ...rewards, origin: '/elsewhere/my_rewards.py' })), undefined, 'another file: asked again');
  assert.equal(a.choice('/ws/runs/shared', report(rewards, payload)), undefined, 'another module: asked again');
  a.remember('/ws/runs/shared', report(rewards), 'import');
  assert.equal(a.choice('/ws/runs/shared', report(rewards)), 'import');
});

test("a cached report lasts while the run's config.json is unchanged", async () => {
  const dir = tmp();
  const cfg = path.join(dir, 'config.json');
  fs.writeFileSync(cfg, JSON.stringify({ reward_function: 'my_rewards:score' }));
  const a = new UserCodeAnswers();
  a.cacheReport(dir, report(rewards));
  assert.deepEqual(a.cachedReport(dir), report(rewards));
  await new Promise((r) => setTimeout(r, 20));
  fs.writeFileSync(cfg, JSON.stringify({ reward_function: 'other:score' }));
  assert.equal(a.cachedReport(dir), undefined, 'config.json rewritten: read again');
  a.cacheReport(dir, report(rewards), configKey(path.join(dir, 'absent')));
  assert.equal(a.cachedReport(dir), undefined, 'a run without config.json is never cached');
});

/** A stand-in interpreter: a shell script that records how it was started and answers `body`. */
function fakePython(body: string): { python: string; record: string } {
  const dir = tmp();
  const record = path.join(dir, 'record.txt');
  const python = path.join(dir, 'python');
  fs.writeFileSync(python, `#!/bin/sh\nprintf '%s\\n' "$@" > '${record}'\necho "cwd=$(pwd)" >> '${record}'\necho "safe=$PYTHONSAFEPATH ws=$GRPO_WORKSPACE pp=$PYTHONPATH" >> '${record}'\n${body}\n`);
  fs.chmodSync(python, 0o755);
  return { python, record };
}

test('queryUserCode runs `python -m grpo user-code TARGET` as an argument array, with the trainer environment', async () => {
  const target = path.join(tmp(), "run with 'quotes' $(touch x) and spaces");
  fs.mkdirSync(target);
  const { python, record } = fakePython(`echo 'log line'\necho '${JSON.stringify(report(rewards))}'`);
  const got = await queryUserCode(python, target, { trainerDir, workspace: '/ws' });
  assert.deepEqual(got, report(rewards));
  const lines = fs.readFileSync(record, 'utf8').split('\n');
  assert.deepEqual(lines.slice(0, 4), ['-m', 'grpo', 'user-code', target], 'the target is one argument, never parsed by a shell');
  assert.equal(lines[4], `cwd=${trainerDir}`);
  assert.match(lines[5], new RegExp(`^safe=1 ws=/ws pp=${trainerDir}`));
  assert.ok(!fs.existsSync(path.join(trainerDir, 'x')) && !fs.existsSync('x'));
});

test('queryUserCode fails with the reason: an exit code and its last stderr line, garbage, a missing interpreter, a timeout', async () => {
  const failing = fakePython(`echo 'Traceback' >&2\necho 'grpo: error: --checkpoint /r: the run has no complete checkpoint yet' >&2\nexit 1`);
  await assert.rejects(queryUserCode(failing.python, '/r', { trainerDir }), (e: Error) => e instanceof UserCodeQueryError && /user code r names .*: grpo: error: --checkpoint \/r: the run has no complete checkpoint yet$/.test(e.message));
  const garbage = fakePython(`echo '{"run_dir": null, "modules": "all"}'`);
  await assert.rejects(queryUserCode(garbage.python, '/r', { trainerDir }), /'modules' must be a list/);
  await assert.rejects(queryUserCode(path.join(tmp(), 'no-python'), '/r', { trainerDir }), /was not found/);
  const slow = fakePython('exec sleep 30');
  const t0 = Date.now();
  await assert.rejects(queryUserCode(slow.python, '/r', { trainerDir, timeoutMs: 300 }), /no answer within/);
  assert.ok(Date.now() - t0 < 5000);
});

test('the real trainer: user-code names the module and its file, refuses a payload beside the run, and imports nothing', { skip: !fs.existsSync(venvPython) && 'no .venv' }, async () => {
  const ws = tmp();
  const run = path.join(ws, 'runs', 'shared');
  fs.mkdirSync(path.join(run, 'checkpoints', 'step_000001'), { recursive: true });
  fs.writeFileSync(path.join(run, 'checkpoints', 'step_000001', 'trainer_state.json'), JSON.stringify({ step: 1, phase: 'grpo' }));
  fs.writeFileSync(path.join(run, 'checkpoints', 'step_000001', 'config.json'), '{}');
  fs.writeFileSync(path.join(run, 'status.json'), JSON.stringify({ protocol: 1, state: 'stopped', phase: 'grpo', pid: null, step: 1, max_steps: 1 }));
  fs.writeFileSync(path.join(run, 'config.json'), JSON.stringify({ task: 'runs.payload:make', reward_function: 'my_rewards:score', history: [] }));
  const marker = path.join(ws, 'IMPORTED');
  const code = `import pathlib\npathlib.Path(${JSON.stringify(marker)}).write_text("x")\ndef score(completions, **kw):\n    return [0.0] * len(completions)\ndef make():\n    pass\n`;
  fs.writeFileSync(path.join(ws, 'my_rewards.py'), code);
  fs.writeFileSync(path.join(ws, 'runs', 'payload.py'), code);
  const got = await queryUserCode(venvPython, path.join(run, 'checkpoints', 'step_000001'), { trainerDir, workspace: ws });
  assert.equal(got.run_dir, fs.realpathSync(run));
  const byName = Object.fromEntries(got.modules.map((m) => [m.setting, m]));
  assert.equal(byName.reward_function.origin, path.join(fs.realpathSync(ws), 'my_rewards.py'));
  assert.equal(byName.reward_function.refused, null);
  assert.match(byName.task.refused ?? '', /run directory/);
  assert.deepEqual(openQuestion('shared', got)?.actions, [OPEN_WITHOUT]);
  assert.ok(!fs.existsSync(marker), 'nothing was imported');
});
