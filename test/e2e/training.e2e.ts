/// <reference lib="dom" />
/**
 * End to end, in real VS Code with the real trainer and only `grpo.pythonPath` set:
 * the Training view's Start, with one value changed in its form (log_samples_steps = 2), starts the embedded
 * default with that value → a run directory with status.json appears → the status bar shows "step N" →
 * "GRPO: Open Dashboard" draws the reward line and grows, and "Where the signal went" draws the trainer's signal
 * ledger and breaks down a clicked step → the group inspector, on the newest logged group, follows the groups
 * the trainer streams, shows its kind badge, and lists the run's logged groups narrowed to those with no signal → a window reload re-attaches to the live run → "GRPO: Stop
 * Training" leaves status.json `stopped` with a checkpoint → the run shows in the Runs view. Every wait for
 * the trainer fails at once when it failed or vanished. Screenshots go to .e2e/screenshots/.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { isPidAlive, readStatus } from '../../src/rundir/runDir';
import { cleanUp, log, repo, runCommand, shot, startRig, statusBarText, trainerGone, until, waitForLine, webviewFrame, type Rig } from './rig';

const python = process.env.GRPO_E2E_PYTHON ?? path.join(repo, '.venv', 'bin', 'python');
const MIN = 60_000;
let rig: Rig | undefined;
let runDir: string | undefined;

after(() => cleanUp(rig, runDir)); // never leave a trainer behind, whatever happened

function metricsRows(dir: string): number {
  const f = path.join(dir, 'metrics.jsonl');
  return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').split('\n').filter((l) => l.trim()).length : 0;
}

/** Shows the GRPO view container (Training and Runs) unless it is showing: clicking its icon then would hide it. */
async function showGrpoViews(page: Rig['page']): Promise<void> {
  const icon = page.locator('.activitybar .action-item', { has: page.locator('a[aria-label^="GRPO"]') }).first();
  if (!/\bchecked\b/.test((await icon.getAttribute('class')) ?? '')) await icon.locator('a').click();
}

test('train from the Training view, watch it live, follow its groups, stop it, find it in the Runs view', { timeout: 55 * MIN }, async () => {
  assert.ok(fs.existsSync(python), `${python} missing (run scripts/setup.sh)`);
  rig = await startRig({ name: 'training', settings: { 'grpo.pythonPath': python } });
  const { page, workspace } = rig;
  const runs = path.join(workspace, 'runs');

  // The form's values travel with Start: the run is made with them (checked once, by the host).
  await showGrpoViews(page);
  const form = await webviewFrame(page, '#settings', MIN);
  await form.locator('summary', { hasText: 'More settings' }).click();
  const field = form.locator('#set-log_samples_steps input');
  await until('log_samples_steps = 2 in the form', async () => {
    await field.fill('2');
    return (await field.inputValue()) === '2';
  }, 30_000, 500);
  await until('Start to be enabled', async () => (await form.locator('#start').getAttribute('disabled')) === null, 30_000);
  await form.locator('#start').click();
  log('started from the Training view');

  runDir = await until('a run directory with status.json', () => {
    const d = fs.existsSync(runs) ? fs.readdirSync(runs).map((n) => path.join(runs, n)).find((p) => fs.existsSync(path.join(p, 'status.json'))) : undefined;
    return d;
  }, 3 * MIN);
  log(`run directory ${path.relative(workspace, runDir)}`);
  const config = await until('config.json', () => fs.existsSync(path.join(runDir!, 'config.json')) && JSON.parse(fs.readFileSync(path.join(runDir!, 'config.json'), 'utf8')), MIN);
  assert.equal(config.log_samples_steps, 2, 'the value typed in the form reached the trainer');
  // Every wait below needs a trainer that trains: one that failed or vanished fails the test at once.
  const training = { failIf: () => trainerGone(runDir!) };

  const early = await until('"step N" in the status bar', async () => {
    const t = await statusBarText(page);
    return /step \d+/.test(t) ? t : undefined;
  }, 3 * MIN, 500, training);
  log(`status bar: ${early}`);
  await shot(rig, '01-status-bar-early');

  // The GRPO phase: metrics rows arrive after the SFT warm-up.
  // The embedded default's 3,000-step SFT (and its start evaluation) takes about 6 min on a quiet 2-core machine,
  // two to five times that when other jobs share it.
  await until('the first GRPO steps in metrics.jsonl', () => metricsRows(runDir!) >= 2, 40 * MIN, 2000, training);
  const grpoText = await until('"step N · reward" in the status bar', async () => {
    const t = await statusBarText(page);
    return /GRPO: step \d+.*reward/.test(t) ? t : undefined;
  }, MIN, 500, training);
  log(`status bar: ${grpoText}`);

  await runCommand(page, 'GRPO: Open Dashboard');
  const dash = await webviewFrame(page, '#charts');
  const canvases = await dash.locator('canvas').count();
  assert.ok(canvases >= 10, `${canvases} canvases`);
  const steps0 = Number(await until('the dashboard to draw steps', async () => Number(await dash.locator('body').getAttribute('data-steps')) > 0 && dash.locator('body').getAttribute('data-steps'), MIN, 500, training));
  await shot(rig, '02-dashboard');
  const steps1 = await until('the dashboard to grow', async () => {
    const n = Number(await dash.locator('body').getAttribute('data-steps'));
    return n > steps0 ? n : undefined;
  }, 5 * MIN, 1000, training);
  log(`dashboard grew from ${steps0} to ${steps1} steps`);
  // drawn, not just axes: the reward chart holds points, and its series' colour fills part of its plot area
  assert.ok(Number(await dash.locator('body').getAttribute('data-points')) > 0, 'the dashboard drew no points');
  const reward = await waitForLine(dash, 'reward');
  log(`reward chart: ${reward.points} points, ${reward.coloured} pixels of its series' colour across a ${reward.plotWidth}-pixel plot`);
  await shot(rig, '03-dashboard-grown');

  // "Where the signal went": the trainer's ledger drawn as stacked shares (filled bands across the plot), and a
  // clicked step broken down into token categories whose counts sum to the step's sampled tokens.
  const signal = dash.locator('[data-chart="signal"]');
  await until('the signal chart to draw the ledger', async () => Number(await signal.getAttribute('data-bands')) >= 1 && Number(await signal.getAttribute('data-points')) >= 2, MIN, 500, training);
  await dash.evaluate('window.__name = (f) => f'); // tsx's keepNames helper, for the function below
  const filled = await signal.evaluate((card) => {
    const el = card as HTMLElement;
    const c = el.querySelector('canvas') as HTMLCanvasElement;
    const [left, top, right, bottom] = (el.dataset.plot ?? '0,0,0,0').split(',').map(Number);
    const k = c.width / (c.clientWidth || 1);
    const w = Math.floor((right - left) * k), h = Math.floor((bottom - top) * k);
    if (w <= 0 || h <= 0) return 0;
    const d = c.getContext('2d')!.getImageData(Math.floor(left * k), Math.floor(top * k), w, h).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 60) n++;
    return n / (w * h);
  });
  log(`signal chart: ${await signal.getAttribute('data-bands')} bands, ${Math.round(filled * 100)}% of its plot filled`);
  assert.ok(filled > 0.3, `the signal chart's bands fill ${Math.round(filled * 100)}% of its plot`);
  const box = (await signal.locator('canvas').boundingBox())!;
  await signal.locator('canvas').click({ position: { x: box.width * 0.6, y: box.height / 2 } });
  const picked = await until('a clicked step in the breakdown', async () => (await signal.getAttribute('data-pinned')) || undefined, 30_000);
  await page.mouse.move(0, 0); // off the chart: the breakdown shows the clicked step, not the hovered one
  const counts = await dash.locator('#signal-tokens tbody tr').evaluateAll((rows) => rows.map((r) => (r.children[1] as HTMLElement).innerText));
  const total = await dash.locator('#signal-tokens tfoot td').nth(1).innerText();
  const num = (t: string) => Number(t.replace(/,/g, ''));
  assert.ok(counts.every((t) => t !== 'unknown'), `the trainer records every category: ${counts.join(' ')}`);
  assert.ok(Math.abs(counts.reduce((a, t) => a + num(t), 0) - num(total)) < 1e-6 * num(total) + 0.5, `categories ${counts.join('+')} sum to ${total}`);
  const summary = await dash.locator('#signal-summary').innerText();
  assert.match(summary, /carried policy gradient/);
  log(`signal: step ${picked} picked (${total} tokens); ${summary}`);
  await shot(rig, '03a-signal-ledger');
  await signal.screenshot({ path: path.join(rig.shots, 'signal-ledger.png') });

  // The newest logged group in the inspector, then "Follow the newest group": each group the trainer streams
  // (its `samples` message, every 2 steps here) replaces it, with no re-reading of samples.jsonl.
  await runCommand(page, 'GRPO: Inspect Per-Token Advantages');
  for (const title of ['Inspect the tokens of which group?', 'Which completion?', 'Colour the tokens by']) {
    await page.locator('.quick-input-widget', { hasText: title }).waitFor({ state: 'visible', timeout: MIN });
    await page.keyboard.press('Enter'); // the first item: the newest step, its first completion, advantage
  }
  const inspector = await webviewFrame(page, '#follow', MIN);
  await until('the follow box to be offered', async () => (await inspector.locator('body').getAttribute('data-follow')) === 'false', 30_000);
  const shownStep = Number(await inspector.locator('body').getAttribute('data-step'));
  await inspector.locator('#follow').click();
  const followedStep = await until('the inspector to show a newer logged group', async () => {
    const n = Number(await inspector.locator('body').getAttribute('data-step'));
    return n > shownStep ? n : undefined;
  }, 5 * MIN, 1000, training);
  assert.equal(await inspector.locator('body').getAttribute('data-follow'), 'true');
  log(`the inspector followed the logged groups from step ${shownStep} to step ${followedStep}`);
  await shot(rig, '03b-inspector-following');

  // The group's kind as a badge; the run's logged groups listed with theirs, narrowed to those with no signal.
  const kinds = ['mixed', 'all_correct', 'all_wrong', 'no_signal_other'];
  const badge = await until('the kind badge', async () => (await inspector.locator('#kind').getAttribute('data-kind')) || undefined, 30_000);
  assert.ok(kinds.includes(badge), `kind badge ${badge}`);
  assert.equal(badge, await inspector.locator('body').getAttribute('data-kind'));
  const listed = await until('the logged groups listed', async () => (await inspector.locator('#group-list li[data-step]').count()) || undefined, 30_000);
  await inspector.locator('#no-signal-only').click();
  await until('the list narrowed to groups with no signal', async () => (await inspector.locator('body').getAttribute('data-no-signal-only')) === 'true', 10_000);
  const narrowed = await inspector.locator('#group-list li[data-step]').evaluateAll((items) => items.map((i) => (i as HTMLElement).dataset.kind));
  assert.ok(narrowed.every((k) => k !== 'mixed' && k !== 'unknown'), `only groups with no signal: ${narrowed.join(', ')}`);
  log(`inspector: kind ${badge}; ${listed} logged groups, ${narrowed.length} without signal (${narrowed.join(', ')})`);
  if (narrowed.length) {
    // one of them, shown: its badge says which kind of no signal
    await inspector.locator('#group-list li[data-step]').first().click();
    const step = Number(await inspector.locator('#group-list li[data-step]').first().getAttribute('data-step'));
    await until('the picked group shown', async () => Number(await inspector.locator('body').getAttribute('data-step')) === step, 30_000);
    assert.equal(await inspector.locator('#kind').getAttribute('data-kind'), narrowed[0]);
    assert.equal(await inspector.locator('#kind-note').isVisible(), true, 'the no-signal note is shown');
  }
  await inspector.evaluate('window.scrollTo(0, 0)'); // the header with the badge in view
  await shot(rig, '03c-inspector-kinds');
  // the inspector's webview alone, as it shows (an element screenshot of a body taller than the window would not)
  const frameBox = await (await inspector.frameElement()).boundingBox();
  if (frameBox) await page.screenshot({ path: path.join(rig.shots, 'inspector-kinds.png'), clip: frameBox });

  // Re-attach: reload the window while the trainer lives; the status bar comes back with the run.
  if (process.env.GRPO_E2E_RELOAD !== '0') {
    const pid = (readStatus(runDir)?.ok && (readStatus(runDir) as { value: { pid: number } }).value.pid) || 0;
    await runCommand(page, 'Developer: Reload Window');
    await page.waitForSelector('.monaco-workbench', { timeout: 90_000 });
    const back = await until('the status bar after reload', async () => {
      const t = await statusBarText(page);
      return /step \d+/.test(t) ? t : undefined;
    }, 2 * MIN, 500, training);
    assert.ok(isPidAlive(pid), 'the trainer survived the reload');
    log(`re-attached after reload: ${back}`);
    const stepAtReload = readStatus(runDir)?.ok ? (readStatus(runDir) as { value: { step: number } }).value.step : 0;
    await until('the trainer to keep stepping after the reload', () => {
      const s = readStatus(runDir!);
      return s?.ok && s.value.step > stepAtReload;
    }, 3 * MIN, 1000, training);
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
  await showGrpoViews(page);
  const name = path.basename(runDir);
  const row = page.locator('.monaco-list-row', { hasText: name }).first();
  await row.waitFor({ state: 'visible', timeout: MIN });
  // the view refreshes from a file watcher on status.json (coalesced to one refresh a second): the row can
  // still show the last running step for a moment after the status bar says stopped
  const rowText = await until('the Runs view row to say stopped', async () => {
    const t = await row.innerText();
    return /stopped/.test(t) ? t : undefined;
  }, MIN, 500);
  log(`Runs view: ${rowText.replace(/\s+/g, ' ')}`);
  const panel = await webviewFrame(page, '#settings');
  assert.ok((await panel.locator('#set-num_generations').count()) === 1, 'the training form is built from the schema');
  await shot(rig, '05-runs-view-and-training-panel');
});
