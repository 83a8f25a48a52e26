/// <reference lib="dom" />
/**
 * End to end, in real VS Code, issue 26's UI with a short real run of two reward functions (the built-in
 * `accuracy` and a TRL-shaped `length_penalty` from a module in the workspace), made with the CLI before the
 * window opens:
 *  - the dashboard's "Reward components" card draws one curve per function and shows no divergence flag;
 *    the same run with its component means replaced by the constructed hackable series
 *    (test/fixtures/divergence_cases.json) shows the flag;
 *  - the group inspector has a column per reward function; "Save as reward test" on a completion asks for the
 *    reward it should get and appends a case to reward-tests.jsonl;
 *  - "GRPO: Check Reward Tests" runs check-rewards on it against the run and lists the case as disagreeing.
 * Screenshots: docs/img/reward-components.png, docs/img/reward-tests.png (and .e2e/screenshots/).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import type { Frame } from 'playwright-core';
import { log, repo, runCommand, shot, startRig, until, waitForLine, webviewFrame, type Rig } from './rig';

const python = process.env.GRPO_E2E_PYTHON ?? path.join(repo, '.venv', 'bin', 'python');
const MIN = 60_000;
const IMG = path.join(repo, 'docs', 'img');
let rig: Rig | undefined;

after(async () => {
  await rig?.close();
});

const REWARDS_PY = `"""Reward functions as a TRL script has them (the e2e test's workspace)."""


def length_penalty(completion_ids, **kwargs):
    """-0.02 per token over 6 tokens."""
    return [-0.02 * max(0, len(ids) - 6) for ids in completion_ids]
`;

/** A short real run with two reward functions; then `hacked`, its copy whose component means are the
 * constructed hackable series (format rising while accuracy falls), older so the real run stays the latest. */
function runs(ws: string): string {
  fs.writeFileSync(path.join(ws, 'my_rewards.py'), REWARDS_PY);
  // code-server is a remote window: grpo.pythonPath (machine-overridable) is read from the workspace there
  fs.mkdirSync(path.join(ws, '.vscode'));
  fs.writeFileSync(path.join(ws, '.vscode', 'settings.json'), JSON.stringify({ 'grpo.pythonPath': python }));
  const dir = path.join(ws, 'runs', 'two-rewards');
  const env = { ...process.env, PYTHONPATH: path.join(repo, 'trainer'), GRPO_WORKSPACE: ws };
  const t0 = Date.now();
  execFileSync(python, ['-m', 'grpo', 'train', '--run-dir', dir, '--quiet', '--set', 'max_steps=8', '--set', 'questions_per_step=8', '--set', 'num_generations=4',
    '--set', 'log_samples_steps=1', '--set', 'save_steps=0', '--set', 'onnx_export=false', '--set', 'eval_steps=0',
    '--set', 'reward_funcs=accuracy,my_rewards:length_penalty', '--set', 'reward_weights=1,1'], { cwd: ws, env, stdio: ['ignore', 'ignore', 'inherit'] });
  log(`two-reward run ready in ${Math.round((Date.now() - t0) / 1000)} s`);
  const hacked = path.join(ws, 'runs', 'hacked');
  fs.cpSync(dir, hacked, { recursive: true });
  const series = (JSON.parse(fs.readFileSync(path.join(repo, 'test', 'fixtures', 'divergence_cases.json'), 'utf8')) as { name: string; series: Record<string, number[]> }[])
    .find((c) => c.name === 'hackable')!.series;
  const rows = series.format.map((f, i) => ({ step: i + 1, 'reward/mean': f + series.accuracy[i], 'rewards/format/mean': f, 'rewards/accuracy/mean': series.accuracy[i] }));
  fs.writeFileSync(path.join(hacked, 'metrics.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const status = path.join(hacked, 'status.json');
  const st = JSON.parse(fs.readFileSync(status, 'utf8'));
  fs.writeFileSync(status, JSON.stringify({ ...st, updated_at: st.updated_at - 3600 }));
  return dir;
}

async function cardShot(rig: Rig, frame: Frame, name: string, file?: string): Promise<void> {
  await frame.locator('[data-chart="components"]').scrollIntoViewIfNeeded();
  await rig.page.waitForTimeout(400);
  const f = await shot(rig, name);
  if (file) fs.copyFileSync(f, path.join(IMG, file));
}

/** Picks the quick pick row containing `text` (or the first) in the open quick input. */
async function pickRow(page: Rig['page'], text?: string): Promise<void> {
  const row = page.locator('.quick-input-list .monaco-list-row', text ? { hasText: text } : {}).first();
  await row.waitFor({ state: 'visible', timeout: 30_000 });
  await row.click();
}

test('reward components: two curves and no flag; the hackable run flagged; columns, Save as reward test, Check Reward Tests', { timeout: 20 * MIN }, async () => {
  assert.ok(fs.existsSync(python), `${python} missing (run scripts/setup.sh)`);
  let runDir = '';
  rig = await startRig({ name: 'rewards', settings: { 'grpo.pythonPath': python, 'workbench.colorTheme': 'Default Dark Modern' }, before: (ws) => void (runDir = runs(ws)) });
  const { page } = rig;
  fs.mkdirSync(IMG, { recursive: true });

  // --- Dashboard: one curve per reward function, no divergence on a real run ----------------------------
  await runCommand(page, 'GRPO: Open Dashboard');
  const dash = await webviewFrame(page, '[data-chart="components"]:not([hidden])', 2 * MIN);
  const drew = await until('the components chart laid out and drawn', async () => {
    const r = await waitForLine(dash, 'components', MIN);
    return r.plotWidth > 0 ? r : undefined;
  }, MIN);
  const card = dash.locator('[data-chart="components"]');
  assert.deepEqual(JSON.parse((await card.getAttribute('data-components')) ?? '[]'), ['accuracy', 'length_penalty']);
  assert.equal(JSON.parse((await card.getAttribute('data-colors')) ?? '[]').length, 2, 'two curves');
  assert.equal(await card.getAttribute('data-diverging'), 'false');
  assert.equal(await dash.locator('#divergence').isHidden(), true, 'no flag on the real run');
  log(`components chart: ${JSON.stringify(drew)}`);
  await cardShot(rig, dash, '40-reward-components', 'reward-components.png');

  // --- The hackable run: the flag ------------------------------------------------------------------------
  await runCommand(page, 'GRPO: Open Run…');
  await pickRow(page, 'hacked');
  await until('the divergence flag', async () => (await dash.locator('#divergence').isVisible().catch(() => false)) || undefined, MIN);
  const flag = (await dash.locator('#divergence').innerText()).trim();
  log(`flag: ${flag}`);
  assert.match(flag, /format ↑ while accuracy ↓ over the last 20 logged steps \(t = \+\d+\.\d \/ −\d+\.\d\)/);
  await cardShot(rig, dash, '41-reward-divergence', 'reward-divergence.png');

  // --- Group view: a column per reward function ------------------------------------------------------------
  await runCommand(page, 'GRPO: Inspect Per-Token Advantages');
  await pickRow(page, 'training step'); // the newest logged group of the latest run (two-rewards)
  await pickRow(page, '#0');
  await pickRow(page, 'advantage');
  const insp = await webviewFrame(page, 'th[data-reward-fn]', 2 * MIN);
  const heads = await insp.locator('th[data-reward-fn]').allInnerTexts();
  assert.deepEqual(heads.map((h) => h.trim()), ['accuracy', 'length_penalty']);
  const rows = await insp.locator('tr[data-completion-index]').count();
  assert.ok(rows >= 2);
  const cells = await insp.locator('tr[data-completion-index="0"] td[data-reward-fn]').allInnerTexts();
  assert.equal(cells.length, 2);
  for (const c of cells) assert.match(c.trim(), /^(-?\d+(\.\d+)?|—)$/);

  // --- Save as reward test: asks the reward, appends a case -----------------------------------------------
  const file = path.join(rig.workspace, 'reward-tests.jsonl');
  assert.equal(fs.existsSync(file), false);
  await insp.locator('tr[data-completion-index="0"] vscode-button', { hasText: 'Save as reward test' }).click();
  const box = page.locator('.quick-input-widget', { hasText: 'What reward should this completion get' });
  await box.waitFor({ state: 'visible', timeout: 30_000 });
  const input = page.locator('.quick-input-widget .quick-input-box input').first();
  const type = async (text: string) => {
    await input.click();
    await page.keyboard.press('Control+A');
    await page.keyboard.type(text);
  };
  try {
    await type('not a number');
    await page.locator('.quick-input-widget', { hasText: 'is not a number' }).first().waitFor({ state: 'visible', timeout: 10_000 });
    await type('5');
    await until('5 in the input box', async () => (await input.inputValue()) === '5', 10_000, 300);
  } catch (e) {
    await shot(rig, '43-save-input-failed');
    throw e;
  }
  await page.keyboard.press('Enter');
  await until('the case in reward-tests.jsonl', () => fs.existsSync(file) && fs.readFileSync(file, 'utf8').endsWith('\n'), 30_000);
  const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
  assert.equal(lines.length, 1);
  const c = JSON.parse(lines[0]);
  assert.equal(c.expected, 5);
  assert.deepEqual(Object.keys(c.rewards), ['accuracy', 'length_penalty']);
  assert.equal(typeof c.completion, 'string');
  assert.equal(typeof c.question, 'string');
  log(`saved: ${lines[0].slice(0, 200)}`);
  await page.locator('.notifications-toasts .notification-toast', { hasText: 'saved as reward test' }).first().waitFor({ state: 'visible', timeout: 30_000 });

  // --- Check Reward Tests: the case disagrees (expected 5) ---------------------------------------------------
  await page.keyboard.press('Escape');
  await runCommand(page, 'GRPO: Check Reward Tests');
  const dialog = page.locator('.monaco-dialog-box', { hasText: 'names user code' });
  await dialog.waitFor({ state: 'visible', timeout: 2 * MIN });
  assert.match(await dialog.innerText(), /my_rewards/);
  await dialog.locator('.monaco-button', { hasText: 'Import and Check' }).click();
  const title = page.locator('.quick-input-widget', { hasText: 'reward tests disagree' });
  await title.waitFor({ state: 'visible', timeout: 3 * MIN });
  const text = (await title.innerText()).replace(/\s+/g, ' ');
  log(`check: ${text.slice(0, 300)}`);
  assert.match(text, /1 of 1 reward tests disagree with run two-rewards's reward functions \(accuracy, length_penalty\)/);
  assert.match(text, /line 1: expected 5, got -?\d/);
  const f = await shot(rig, '42-reward-tests');
  fs.copyFileSync(f, path.join(IMG, 'reward-tests.png'));
  await page.keyboard.press('Escape');
  assert.ok(runDir);
});
