/// <reference lib="dom" />
/**
 * End to end, in real VS Code with the real trainer: the Training view's Preflight, with one value changed in
 * its form (temperature, a GRPO-only setting, so the SFT start comes from the cache), runs
 * `python -m grpo preflight --json` and shows a verdict with its numbers; changing a setting afterwards shows
 * the verdict as stale. Screenshots go to .e2e/screenshots/.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { log, repo, shot, startRig, until, webviewFrame, type Rig } from './rig';

const python = process.env.GRPO_E2E_PYTHON ?? path.join(repo, '.venv', 'bin', 'python');
const MIN = 60_000;
let rig: Rig | undefined;

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
  const field = form.locator('#set-temperature input');
  await until('temperature = 0.7 in the form', async () => {
    await field.fill('0.7');
    return (await field.inputValue()) === '0.7';
  }, 30_000, 500);
  await until('Preflight to be enabled', async () => (await form.locator('#preflight').getAttribute('disabled')) === null, 30_000);
  await form.locator('#preflight').click();
  log('preflight pressed');
  await form.locator('#cancel-preflight').waitFor({ state: 'visible', timeout: 30_000 });
  const verdict = form.locator('#preflight-verdict');
  await until('a verdict', async () => {
    const err = form.locator('#preflight-error');
    if (await err.isVisible()) throw new Error(`preflight failed: ${await err.innerText()}`);
    return verdict.isVisible();
  }, 10 * MIN, 1000);
  const text = await verdict.innerText();
  log(`verdict: ${text}`);
  assert.match(text, /^(Healthy|Wasteful|Dead|Bad settings)$/);
  assert.notEqual(text, 'Bad settings', 'the default settings with one GRPO setting changed are valid');
  const numbers = await form.locator('#preflight-numbers').innerText();
  assert.match(numbers, /signal share/);
  assert.match(numbers, /seconds per step/);
  assert.ok(await form.locator('#cancel-preflight').isHidden(), 'Cancel is gone once it answered');
  await shot(rig, '30-preflight');

  // a changed setting: the verdict is for other settings now
  await until('temperature = 0.9', async () => {
    await field.fill('0.9');
    return (await field.inputValue()) === '0.9';
  }, 30_000, 500);
  await form.locator('#preflight-stale').waitFor({ state: 'visible', timeout: 30_000 });
  await shot(rig, '31-preflight-stale');
});
