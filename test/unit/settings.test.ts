import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { checkValues, defaultValues, diffFromDefaults, EMBEDDED_SCHEMA, launchArgs, parseFieldText, PRESETS, presetValues, sanitizeValues, trainArgs, validateValue, type SettingValues } from '../../src/shared/settings';

/** `values` through the one check, as the controller does before building the argv. */
function checked(values: SettingValues) {
  const c = checkValues(values);
  assert.ok(c.ok, c.ok ? '' : c.error);
  return c.value;
}

const spec = (key: string) => EMBEDDED_SCHEMA.find((s) => s.key === key)!;

test('the embedded default adds no --set: `grpo train` runs its own defaults', () => {
  assert.deepEqual(trainArgs({ runDir: '/w/runs/a', values: checked(defaultValues()) }), ['-m', 'grpo', 'train', '--run-dir', '/w/runs/a']);
  assert.equal(PRESETS[0].id, 'default');
  assert.deepEqual(presetValues(PRESETS[0]), defaultValues());
});

test('changed values become --set key=value arguments, one array element each (no shell quoting)', () => {
  const v = { ...defaultValues(), beta: 0, learning_rate: 1e-6, loss_type: 'dapo', task: '/data/my file; rm -rf ~.jsonl', epsilon_high: 0.28 };
  const args = trainArgs({ runDir: '/r', values: checked(v) });
  assert.deepEqual(args.slice(5), [
    '--set', '/data/my file; rm -rf ~.jsonl'.replace(/^/, 'task='),
    '--set', 'learning_rate=0.000001',
    '--set', 'beta=0',
    '--set', 'epsilon_high=0.28',
    '--set', 'loss_type=dapo',
  ]);
  assert.deepEqual(trainArgs({ runDir: '/r', resume: true }), ['-m', 'grpo', 'train', '--run-dir', '/r', '--resume']);
});

test('values are validated like the trainer validates them', () => {
  assert.equal(validateValue(spec('num_generations'), 1), 'num_generations must be ≥ 2');
  assert.equal(validateValue(spec('num_generations'), 2.5), 'num_generations must be a whole number');
  assert.equal(validateValue(spec('learning_rate'), 0), 'learning_rate must be > 0');
  assert.equal(validateValue(spec('epsilon'), 1.5), 'epsilon must be ≤ 1');
  assert.match(validateValue(spec('loss_type'), 'ppo') ?? '', /one of grpo, dr_grpo, dapo/);
  assert.equal(validateValue(spec('epsilon_high'), null), null);
  assert.equal(validateValue(spec('beta'), null), 'beta must be set');
  assert.deepEqual(checkValues({ num_generations: 1 }), { ok: false, error: 'num_generations must be ≥ 2' });
});

test('checkValues: the values over the defaults, or every problem named (unknown keys too)', () => {
  assert.deepEqual(checked({ beta: 0 }), { ...defaultValues(), beta: 0 });
  assert.deepEqual(checkValues({ beta: -1, nope: 1, loss_type: 'ppo' }), {
    ok: false,
    error: `beta must be ≥ 0; unknown setting 'nope'; ${validateValue(spec('loss_type'), 'ppo')}`,
  });
});

test('form text is parsed into the setting type', () => {
  assert.equal(parseFieldText(spec('beta'), ' 0.1 '), 0.1);
  assert.ok(Number.isNaN(parseFieldText(spec('beta'), '')));
  assert.equal(parseFieldText(spec('epsilon_high'), ''), null);
  assert.equal(parseFieldText(spec('task'), 'arith'), 'arith');
});

test('remembered values keep only differences; read back, unknown or invalid keys are dropped with a reason', () => {
  assert.deepEqual(diffFromDefaults({ ...defaultValues(), beta: 0.1 }), { beta: 0.1 });
  const r = sanitizeValues({ beta: 0.1, nope: 1, num_generations: 0 });
  assert.equal(r.values.beta, 0.1);
  assert.equal(r.values.num_generations, defaultValues().num_generations);
  assert.deepEqual(r.errors, ["unknown setting 'nope'", 'num_generations must be ≥ 2']);
});

test('the embedded schema is in sync with trainer/grpo/config.py', () => {
  const out = execFileSync(process.execPath, ['scripts/gen-config-schema.mjs', '--check'], { encoding: 'utf8' });
  assert.match(out, /up to date/);
});

test('launchArgs: python as is, torchrun with the process count, bad values named', () => {
  const t = trainArgs({ runDir: '/r' });
  assert.deepEqual(launchArgs(t, 'python', 4), t);
  assert.deepEqual(launchArgs(t, 'torchrun', 2),
    ['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '-m', 'grpo', 'train', '--run-dir', '/r']);
  assert.throws(() => launchArgs(t, 'torchrun', 0), /grpo.processes/);
  assert.throws(() => launchArgs(t, 'torchrun', 1.5), /grpo.processes/);
  assert.throws(() => launchArgs(t, 'mpirun' as never, 2), /grpo.launcher/);
});
