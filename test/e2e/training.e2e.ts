/// <reference lib="dom" />
/**
 * End to end, in real VS Code with the real trainer and only `grpo.pythonPath` set:
 * "GRPO: Start Training" from the palette starts the embedded default → a run directory with status.json
 * appears → the status bar shows "step N" → "GRPO: Open Dashboard" shows canvases growing → a window
 * reload re-attaches to the live run → "GRPO: Stop Training" leaves status.json `stopped` with a
 * checkpoint → the run shows in the Runs view. Screenshots go to .e2e/screenshots/.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { isPidAlive, readStatus } from '../../src/rundir/runDir';
import { cleanUp, log, paintedPixels, repo, runCommand, shot, startRig, statusBarText, until, webviewFrame, type Rig } from './rig';

const python = process.env.GRPO_E2E_PYTHON ?? path.join(repo, '.venv', 'bin', 'python');
const MIN = 60_000;
let rig: Rig | undefined;
let runDir: string | undefined;

after(() => cleanUp(rig, runDir)); // never leave a trainer behind, whatever happened

function metricsRows(dir: string): number {
  const f = path.join(dir, 'metrics.jsonl');
  return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').split('\n').filter((l) => l.trim()).length : 0;
}

test('train from the command palette, watch it live, stop it, find it in the Runs view', { timeout: 55 * MIN }, async () => {
  assert.ok(fs.existsSync(python), `${python} missing (run scripts/setup.sh)`);
  rig = await startRig({ name: 'training', settings: { 'grpo.pythonPath': python } });
  const { page, workspace } = rig;
  const runs = path.join(workspace, 'runs');

  await runCommand(page, 'GRPO: Start Training');
  log('started from the palette');

  runDir = await until('a run directory with status.json', () => {
    const d = fs.existsSync(runs) ? fs.readdirSync(runs).map((n) => path.join(runs, n)).find((p) => fs.existsSync(path.join(p, 'status.json'))) : undefined;
    return d;
  }, 3 * MIN);
  log(`run directory ${path.relative(workspace, runDir)}`);
  const config = JSON.parse(fs.readFileSync(path.join(runDir, 'config.json'), 'utf8'));

  const early = await until('"step N" in the status bar', async () => {
    const t = await statusBarText(page);
    return /step \d+/.test(t) ? t : undefined;
  }, 3 * MIN);
  log(`status bar: ${early}`);
  await shot(rig, '01-status-bar-early');

  // The GRPO phase: metrics rows arrive after the SFT warm-up.
  // The embedded default's 3,000-step SFT (and its start evaluation) takes about 6 min on a quiet 2-core machine,
  // two to five times that when other jobs share it.
  await until('the first GRPO steps in metrics.jsonl', () => metricsRows(runDir!) >= 2, 40 * MIN, 2000);
  const grpoText = await until('"step N · reward" in the status bar', async () => {
    const t = await statusBarText(page);
    return /GRPO: step \d+.*reward/.test(t) ? t : undefined;
  }, MIN);
  log(`status bar: ${grpoText}`);

  await runCommand(page, 'GRPO: Open Dashboard');
  const dash = await webviewFrame(page, '#charts');
  const canvases = await dash.locator('canvas').count();
  assert.ok(canvases >= 10, `${canvases} canvases`);
  const steps0 = Number(await until('the dashboard to draw steps', async () => Number(await dash.locator('body').getAttribute('data-steps')) > 0 && dash.locator('body').getAttribute('data-steps'), MIN));
  await shot(rig, '02-dashboard');
  const steps1 = await until('the dashboard to grow', async () => {
    const n = Number(await dash.locator('body').getAttribute('data-steps'));
    return n > steps0 ? n : undefined;
  }, 5 * MIN, 1000);
  log(`dashboard grew from ${steps0} to ${steps1} steps`);
  const pixels = await paintedPixels(dash);
  assert.ok(pixels > 500, `the reward chart has ${pixels} painted pixels`);
  await shot(rig, '03-dashboard-grown');

  // Re-attach: reload the window while the trainer lives; the status bar comes back with the run.
  if (process.env.GRPO_E2E_RELOAD !== '0') {
    const pid = (readStatus(runDir)?.ok && (readStatus(runDir) as { value: { pid: number } }).value.pid) || 0;
    await runCommand(page, 'Developer: Reload Window');
    await page.waitForSelector('.monaco-workbench', { timeout: 90_000 });
    const back = await until('the status bar after reload', async () => {
      const t = await statusBarText(page);
      return /step \d+/.test(t) ? t : undefined;
    }, 2 * MIN);
    assert.ok(isPidAlive(pid), 'the trainer survived the reload');
    log(`re-attached after reload: ${back}`);
    const stepAtReload = readStatus(runDir)?.ok ? (readStatus(runDir) as { value: { step: number } }).value.step : 0;
    await until('the trainer to keep stepping after the reload', () => {
      const s = readStatus(runDir!);
      return s?.ok && s.value.step > stepAtReload;
    }, 3 * MIN, 1000);
    await shot(rig, '04-after-reload');
  }

  await runCommand(page, 'GRPO: Stop Training');
  log('stop requested');
  const stopped = await until('status.json to say stopped', () => {
    const s = readStatus(runDir!);
    return s?.ok && s.value.state === 'stopped' ? s.value : undefined;
  }, 5 * MIN, 1000);
  assert.ok(stopped.last_checkpoint, 'a checkpoint was recorded');
  assert.ok(fs.existsSync(path.join(runDir, stopped.last_checkpoint!, 'config.json')), `${stopped.last_checkpoint} holds a model`);
  log(`stopped at step ${stopped.step} with ${stopped.last_checkpoint}`);
  assert.equal(config.max_steps, JSON.parse(fs.readFileSync(path.join(repo, 'src', 'shared', 'generated', 'configSchema.json'), 'utf8')).find((s: { key: string }) => s.key === 'max_steps').default, 'the embedded default ran');
  await until('the status bar to show stopped', async () => /stopped/.test(await statusBarText(page)), MIN);

  // The Runs view lists it.
  await page.locator('.activitybar .action-item a[aria-label^="GRPO"]').first().click();
  const name = path.basename(runDir);
  const row = page.locator('.monaco-list-row', { hasText: name }).first();
  await row.waitFor({ state: 'visible', timeout: MIN });
  const rowText = await row.innerText();
  assert.match(rowText, /stopped/);
  log(`Runs view: ${rowText.replace(/\s+/g, ' ')}`);
  const panel = await webviewFrame(page, '#settings');
  assert.ok((await panel.locator('#set-num_generations').count()) === 1, 'the training form is built from the schema');
  await shot(rig, '05-runs-view-and-training-panel');
});
