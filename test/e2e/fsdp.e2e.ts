/// <reference lib="dom" />
/**
 * End to end, in real VS Code with the real trainer: `grpo.launcher` = torchrun with `grpo.processes` = 2 and the
 * Training view's `fsdp` = full_shard start a sharded run of two CPU processes (gloo); the status bar follows it
 * live, it finishes, rank 0 alone writes the run directory, and its last checkpoint is an ordinary Hugging Face
 * directory that `python -m grpo sample` opens.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { readStatus } from '../../src/rundir/runDir';
import { cleanUp, log, repo, setField, shot, startRig, statusBarText, until, webviewFrame, type Rig } from './rig';

const python = process.env.GRPO_E2E_PYTHON ?? path.join(repo, '.venv', 'bin', 'python');
const MIN = 60_000;
let rig: Rig | undefined;
let runDir: string | undefined;

after(() => cleanUp(rig, runDir));

test('torchrun with 2 processes and fsdp=full_shard from the Training view trains a sharded run to the end', { timeout: 15 * MIN }, async () => {
  assert.ok(fs.existsSync(python), `${python} missing (run scripts/setup.sh)`);
  rig = await startRig({ name: 'fsdp', settings: { 'grpo.pythonPath': python, 'grpo.launcher': 'torchrun', 'grpo.processes': 2 } });
  const { page, workspace } = rig;
  const icon = page.locator('.activitybar .action-item', { has: page.locator('a[aria-label^="GRPO"]') }).first();
  if (!/\bchecked\b/.test((await icon.getAttribute('class')) ?? '')) await icon.locator('a').click();
  const form = await webviewFrame(page, '#settings', MIN);
  // most of these are under "More settings", folded at first
  const more = form.locator('details', { has: form.locator('summary', { hasText: 'More settings' }) }).first();
  if (!(await more.evaluate((d) => (d as HTMLDetailsElement).open))) await more.locator('summary').click();
  for (const [key, value] of [['sft_steps', '0'], ['max_steps', '2'], ['questions_per_step', '2'], ['num_generations', '4'],
    ['max_completion_length', '16'], ['eval_size', '8'], ['save_steps', '1']] as const) {
    await setField(form, key, value);
  }
  // the sharding setting is a dropdown of its choices ('(off)' for the empty one)
  const fsdp = form.locator('#set-fsdp');
  assert.deepEqual(await fsdp.locator('vscode-option').allTextContents(), ['(off)', 'full_shard']);
  await until('fsdp = full_shard in the form', async () => {
    await fsdp.evaluate((d) => {
      (d as HTMLElement & { value: string }).value = 'full_shard';
      d.dispatchEvent(new Event('change'));
    });
    return (await fsdp.evaluate((d) => (d as HTMLElement & { value: string }).value)) === 'full_shard';
  }, 30_000, 500);
  await shot(rig, 'fsdp-01-form');
  await until('Start to be enabled', async () => (await form.locator('#start').getAttribute('disabled')) === null, 30_000);
  await form.locator('#start').click();

  const runs = path.join(workspace, 'runs');
  runDir = await until('a run directory with status.json', () =>
    fs.existsSync(runs) ? fs.readdirSync(runs).map((n) => path.join(runs, n)).find((p) => fs.existsSync(path.join(p, 'status.json'))) : undefined, 3 * MIN);
  const config = JSON.parse(fs.readFileSync(path.join(runDir, 'config.json'), 'utf8'));
  assert.equal(config.fsdp, 'full_shard');
  const bar = await until('"step N" in the status bar', async () => {
    const t = await statusBarText(page);
    return /step [1-9]\d*/.test(t) ? t : undefined;
  }, 5 * MIN);
  log(`sharded run live: ${bar}`);
  await until('the run to finish', () => {
    const s = readStatus(runDir!);
    if (s?.ok && s.value.state === 'failed') throw new Error(`the run failed: ${s.value.error}`);
    return s?.ok && s.value.state === 'finished';
  }, 8 * MIN, 1000);
  await shot(rig, 'fsdp-02-finished');

  // two processes trained, rank 0 alone wrote: one metrics row per step, and torchrun's two workers in the log
  const rows = fs.readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(rows.map((r) => r.step), [1, 2]);
  const events = fs.readFileSync(path.join(runDir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(!events.some((e) => e.code === 'fsdp_single_process'), 'sharded over 2 processes, not ignored as one');
  const ckpt = path.join(runDir, 'checkpoints', 'step_000002');
  assert.ok(fs.existsSync(path.join(ckpt, 'model.safetensors')), 'the sharded run saved a whole Hugging Face checkpoint');
  const sample = spawnSync(python, ['-m', 'grpo', 'sample', '--checkpoint', ckpt, '--question', '3+4', '--num-generations', '2', '--max-new-tokens', '8'],
    { env: { ...process.env, PYTHONPATH: path.join(repo, 'trainer') }, encoding: 'utf8', timeout: 5 * MIN });
  assert.equal(sample.status, 0, sample.stderr);
  assert.equal(JSON.parse(sample.stdout.trim().split('\n').pop()!).completions.length, 2);
  log(`checkpoint ${path.basename(ckpt)} sampled: ${JSON.parse(sample.stdout.trim().split('\n').pop()!).completions.join(' | ')}`);
});
