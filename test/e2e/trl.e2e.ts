/// <reference lib="dom" />
/**
 * End to end, in real VS Code, with a run trained by TRL's GRPOTrainer (not by the extension): the user's
 * own script — here `python -m grpo.integrations.trl_example`, a tiny random Qwen2 on the CPU with
 * `grpo.integrations.trl.attach` — trains in the background, as it would in a terminal, while the window
 * is open:
 *  - the run appears in the runs folder; "GRPO: Open Dashboard" follows it: the step count grows while TRL
 *    trains, and the reward chart is drawn;
 *  - once it is over, "GRPO: Sample Group" on its latest checkpoint (`serve` on TRL's hard-linked
 *    checkpoint, TRL's starting model as the reference) shows a group in the inspector.
 * Screenshots go to .e2e/screenshots/.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { listCheckpoints, listSampleSteps, readMetrics, readSampleGroup, readStatus, summarizeRuns } from '../../src/rundir/runDir';
import { log, repo, runCommand, shot, startRig, until, waitForLine, webviewFrame, type Rig } from './rig';

const python = process.env.GRPO_E2E_PYTHON ?? path.join(repo, '.venv', 'bin', 'python');
const MIN = 60_000;
const STEPS = 240;
let rig: Rig | undefined;
let script: ChildProcess | undefined;

after(async () => {
  if (script && script.exitCode === null) script.kill();
  await rig?.close();
});

test('a TRL run: the dashboard follows it live, and Sample Group works on its checkpoint', { timeout: 20 * MIN }, async () => {
  assert.ok(fs.existsSync(python), `${python} missing (run scripts/setup.sh)`);
  rig = await startRig({ name: 'trl', settings: { 'grpo.pythonPath': python } });
  const { page, workspace } = rig;
  const runDir = path.join(workspace, 'runs', 'trl-run');
  const stderr: string[] = [];
  script = spawn(python, ['-m', 'grpo.integrations.trl_example', '--run-dir', runDir, '--output-dir', path.join(workspace, 'trl-out'),
    '--steps', String(STEPS), '--save-steps', '80', '--log-samples-steps', '40'],
  { env: { ...process.env, PYTHONPATH: path.join(repo, 'trainer'), OMP_NUM_THREADS: '2' }, stdio: ['ignore', 'ignore', 'pipe'] });
  script.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
  const exited = new Promise<number | null>((resolve) => script!.on('exit', (code) => resolve(code)));

  // The script's exit ends the wait at once (an assert inside the polled function would only be retried).
  const scriptExited = () => (script!.exitCode !== null || script!.signalCode !== null ? `the TRL script exited (${script!.exitCode ?? script!.signalCode}): ${stderr.join('').slice(-2000)}` : null);
  await until('the TRL run\'s first metrics row', async () => (await readMetrics(runDir)).rows.length >= 1, 5 * MIN, 1000, { failIf: scriptExited });
  await runCommand(page, 'GRPO: Open Dashboard');
  const dash = await webviewFrame(page, '#charts');
  const steps0 = Number(await until('the dashboard to draw steps', async () => Number(await dash.locator('body').getAttribute('data-steps')) > 0 && dash.locator('body').getAttribute('data-steps'), MIN));
  log(`dashboard opened at ${steps0} steps`);
  const steps1 = await until('the dashboard to follow TRL', async () => {
    const n = Number(await dash.locator('body').getAttribute('data-steps'));
    return n > steps0 ? n : undefined;
  }, 5 * MIN, 1000);
  log(`the dashboard followed the TRL run from ${steps0} to ${steps1} steps`);
  assert.ok(steps0 < STEPS, 'the dashboard opened while TRL was still training');
  const reward = await waitForLine(dash, 'reward');
  log(`reward chart: ${reward.points} points, ${reward.coloured} pixels of its series' colour across a ${reward.plotWidth}-pixel plot`);
  await shot(rig, '20-trl-dashboard');

  assert.equal(await exited, 0, `the TRL script failed: ${stderr.join('').slice(-2000)}`);
  const status = readStatus(runDir);
  assert.ok(status?.ok && status.value.state === 'finished' && status.value.step === STEPS, JSON.stringify(status));
  assert.deepEqual(listCheckpoints(runDir).map((c) => c.step), [0, 80, 160, 240]);
  // what the Runs view reads: the run, its best reward, and its logged groups valid under our record guard
  const listed = (await summarizeRuns(path.join(workspace, 'runs'))).find((r) => r.dir === runDir);
  assert.ok(listed && listed.state === 'finished' && listed.bestReward !== null, JSON.stringify(listed));
  assert.deepEqual(await listSampleSteps(runDir), [1, 40, 80, 120, 160, 200, 240]);
  const logged = await readSampleGroup(runDir, 40);
  assert.ok(logged?.ok, logged && !logged.ok ? logged.error : 'no group at step 40');

  await runCommand(page, 'GRPO: Sample Group');
  const box = page.locator('.quick-input-widget', { hasText: 'Sample a group from' });
  await box.waitFor({ state: 'visible', timeout: 30_000 });
  const input = box.locator('input');
  await until('the question in the input box', async () => {
    await input.fill('What is 12 plus 30?');
    return (await input.inputValue()) === 'What is 12 plus 30?';
  }, 10_000, 300);
  await page.keyboard.press('Enter');
  const inspector = await webviewFrame(page, '[data-completion-index]', 4 * MIN);
  const rows = await inspector.locator('[data-completion-index]').count();
  log(`inspector rows: ${rows}`);
  assert.ok(rows >= 2, `${rows} completion rows`);
  assert.ok(Number(await inspector.locator('body').getAttribute('data-tokens')) > 0, 'the heatmap drew tokens');
  await shot(rig, '21-trl-sample-group');
});
