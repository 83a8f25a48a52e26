/// <reference lib="dom" />
/**
 * End to end, in real VS Code with the real trainer: the Training view's Preflight, with one value changed in
 * its form (temperature, a GRPO-only setting, so the SFT start comes from the cache), runs
 * `python -m grpo preflight --json` and shows a Healthy verdict with its numbers; changing a setting afterwards
 * shows the verdict as stale. Then, in the same window, max_completion_length = 5 makes preflight predict a dead
 * run (completions cut off before any answer) with its change, and Start with those settings asks in a modal
 * warning naming the problem; Cancel there starts nothing. Screenshots go to .e2e/screenshots/.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import type { Frame } from 'playwright-core';
import { GiveUp, log, repo, setField, shot, startRig, until, webviewFrame, type Rig } from './rig';

const python = process.env.GRPO_E2E_PYTHON ?? path.join(repo, '.venv', 'bin', 'python');
const MIN = 60_000;
let rig: Rig | undefined;

/** Presses Preflight and waits for its verdict (failing at once when preflight failed); the verdict's label. */
async function preflight(form: Frame): Promise<string> {
  await until('Preflight to be enabled', async () => (await form.locator('#preflight').getAttribute('disabled')) === null, 30_000);
  await form.locator('#preflight').click();
  log('preflight pressed');
  await form.locator('#cancel-preflight').waitFor({ state: 'visible', timeout: 30_000 });
  const verdict = form.locator('#preflight-verdict');
  await until('a verdict', async () => {
    const err = form.locator('#preflight-error');
    if (await err.isVisible()) throw new GiveUp(`preflight failed: ${await err.innerText()}`);
    return (await verdict.isVisible()) && (await form.locator('#preflight-stale').count()) === 0;
  }, 10 * MIN, 1000);
  const text = await verdict.innerText();
  log(`verdict: ${text}`);
  return text;
}

after(async () => {
  await rig?.close();
});

test('Preflight in the Training view shows a verdict, then marks it stale when a setting changes', { timeout: 20 * MIN }, async () => {
  assert.ok(fs.existsSync(python), `${python} missing (run scripts/setup.sh)`);
  rig = await startRig({ name: 'preflight', settings: { 'grpo.pythonPath': python } });
  const { page } = rig;
  const icon = page.locator('.activitybar .action-item', { has: page.locator('a[aria-label^="GRPO"]') }).first();
  if (!/\bchecked\b/.test((await icon.getAttribute('class')) ?? '')) await icon.locator('a').click();
  const form = await webviewFrame(page, '#settings', MIN);
  await setField(form, 'temperature', '0.7');
  const text = await preflight(form);
  assert.equal(text, 'Healthy', 'the default settings (SFT start from the cache) with temperature 0.7 train');
  const numbers = await form.locator('#preflight-numbers').innerText();
  assert.match(numbers, /signal share/);
  assert.match(numbers, /seconds per step/);
  assert.ok(await form.locator('#cancel-preflight').isHidden(), 'Cancel is gone once it answered');
  await shot(rig, '30-preflight');

  // a changed setting: the verdict is for other settings now
  await setField(form, 'temperature', '0.9');
  await form.locator('#preflight-stale').waitFor({ state: 'visible', timeout: 30_000 });
  await shot(rig, '31-preflight-stale');

  // max_completion_length = 5: no completion gets to its answer, so no group carries signal. sft_steps = 0
  // because max_completion_length is in the SFT cache's key: the default's 2000 SFT steps would train for
  // minutes here; the untrained start is cut off just the same.
  await setField(form, 'sft_steps', '0');
  await setField(form, 'max_completion_length', '5');
  assert.equal(await preflight(form), 'Dead', 'completions cut off at 5 tokens earn nothing');
  const problems = await form.locator('#preflight-problems').innerText();
  log(`problems: ${problems}`);
  assert.match(problems, /reach max_completion_length = 5 without an answer/);
  assert.match(problems, /raise max_completion_length to ≥ 32/);
  // the views below out of the way, so that the verdict shows whole
  for (const name of ['Runs', 'Prompt Atlas']) {
    const header = page.locator('.pane-header[aria-expanded="true"]', { hasText: name }).first();
    if (await header.count()) await header.click();
  }
  await form.locator('#preflight-problems').scrollIntoViewIfNeeded();
  await shot(rig, '32-preflight-dead');

  // Start with the same settings: a modal warning names the problem; Cancel starts nothing
  const runs = path.join(rig.workspace, 'runs');
  const runDirs = () => (fs.existsSync(runs) ? fs.readdirSync(runs) : []);
  assert.deepEqual(runDirs(), [], 'no run before Start');
  await until('Start to be enabled', async () => (await form.locator('#start').getAttribute('disabled')) === null, 30_000);
  await form.locator('#start').click();
  log('start pressed');
  const dialog = page.locator('.monaco-dialog-box', { hasText: 'Preflight predicts a dead run' }).first();
  await dialog.waitFor({ state: 'visible', timeout: 30_000 });
  const warning = (await dialog.innerText()).replace(/\u00a0/g, ' ');
  log(`warning: ${warning}`);
  assert.match(warning, /Preflight predicts a dead run with these settings: .*reach max_completion_length = 5 without an answer.*Start anyway\?/s);
  assert.match(warning, /raise max_completion_length to ≥ 32/);
  await shot(rig, '33-preflight-start-warning');
  await dialog.locator('.dialog-buttons .monaco-button', { hasText: /^Cancel$/ }).click();
  await dialog.waitFor({ state: 'hidden', timeout: 10_000 });
  await new Promise((r) => setTimeout(r, 3000)); // a start that went on would have made its run directory by now
  assert.deepEqual(runDirs(), [], 'Cancel in the warning starts no run');
  assert.equal(await form.locator('body').getAttribute('data-state'), 'idle', 'the Training view shows no run');
});
