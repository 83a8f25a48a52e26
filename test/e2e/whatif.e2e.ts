/// <reference lib="dom" />
/**
 * End to end, in real VS Code, on a real small run made with the trainer's CLI before the window opens (300
 * SFT steps, then 3 GRPO steps of 16 groups at a learning rate that moves the policy, a group logged and a
 * replay record written every step): a logged step in the group inspector → **What if…** → dr_grpo and GSPO
 * (importance_sampling_level=sequence) ticked → Replay: `python -m grpo serve` on the run's checkpoint
 * replays the step, and the "What if: step N" panel shows 3 columns (the run's own settings first) whose
 * heatmaps colour tokens by non-zero Δ log π, a token's hover with its exact Δ, rows sorted by |Δ seq| of
 * the sorted column, each column's ledger line and the run's "reproduced" line; a step whose record was removed
 * is said before asking and refused by the trainer with the replayable steps, whose buttons open one. No mock
 * anywhere.
 * Screenshots go to .e2e/screenshots/ (40-whatif.png is docs/img/whatif.png).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import type { Frame } from 'playwright-core';
import { log, repo, runCommand, shot, startRig, until, webviewFrame, type Rig } from './rig';

const python = process.env.GRPO_E2E_PYTHON ?? path.join(repo, '.venv', 'bin', 'python');
const MIN = 60_000;
let rig: Rig | undefined;

after(async () => {
  await rig?.close();
});

/** The run: every step logs a group (and so writes its replay record); returns its directory. */
function smallRun(workspace: string): string {
  const dir = path.join(workspace, 'runs', 'whatif');
  const env = { ...process.env, PYTHONPATH: path.join(repo, 'trainer') };
  const t0 = Date.now();
  // 300 SFT steps (the SFT start is cached by GRPO_CACHE_DIR): enough that some groups' answers differ, so
  // the logged steps carry signal and their updates move tokens
  execFileSync(python, ['-m', 'grpo', 'train', '--run-dir', dir, '--quiet', '--set', 'sft_steps=300', '--set', 'max_steps=3', '--set', 'eval_size=8',
    '--set', 'save_steps=0', '--set', 'num_generations=4', '--set', 'questions_per_step=16', '--set', 'log_samples_steps=1', '--set', 'learning_rate=0.001',
    '--set', 'onnx_export=false'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  log(`run ready in ${Math.round((Date.now() - t0) / 1000)} s`);
  return dir;
}

/** The logged step whose batch carried the most signal (the fewest groups with equal rewards; the latest of
 * equals): its update moves tokens. */
function stepWithSignal(runDir: string): number {
  const rows = fs.readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, number | null>);
  const logged = new Set(fs.readFileSync(path.join(runDir, 'samples.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { step: number }).step));
  const ok = rows.filter((r) => typeof r.step === 'number' && logged.has(r.step) && typeof r.frac_reward_zero_std === 'number' && r.frac_reward_zero_std < 1);
  assert.ok(ok.length, `no logged step of the run carried signal (frac_reward_zero_std per step: ${rows.map((r) => `${r.step}:${r.frac_reward_zero_std}`).join(', ')})`);
  return ok.reduce((best, r) => ((r.frac_reward_zero_std as number) <= (best.frac_reward_zero_std as number) ? r : best)).step as number;
}

const num = (s: string) => Number(s.replace('−', '-'));

/** Ticks exactly the presets `want` in the What-if chooser. */
async function choose(frame: Frame, want: string[]): Promise<void> {
  for (const box of await frame.locator('vscode-checkbox[data-preset]').all()) {
    const id = (await box.getAttribute('data-preset'))!;
    const disabled = await box.evaluate((b) => b.hasAttribute('disabled'));
    if (disabled) {
      assert.ok(!want.includes(id), `preset ${id} is the run's own setting`);
      continue;
    }
    const checked = () => box.evaluate((b) => (b as HTMLElement & { checked: boolean }).checked);
    if ((await checked()) !== want.includes(id)) await box.click();
    await until(`preset ${id} ${want.includes(id) ? 'ticked' : 'clear'}`, async () => (await checked()) === want.includes(id), 5000, 200);
  }
}

test('What if…: a logged step replayed under dr_grpo and GSPO, side by side as Δ log π heatmaps', { timeout: 20 * MIN }, async () => {
  assert.ok(fs.existsSync(python), `${python} missing (run scripts/setup.sh)`);
  let runDir = '';
  // the dark theme: the screenshot (docs/img/whatif.png) shows the panel as most users see it. grpo.pythonPath
  // also in the workspace settings: code-server is a remote window, where a machine-overridable setting in the
  // User settings may be ignored (DESIGN.md §4), and the replay needs Python
  rig = await startRig({ name: 'whatif', settings: { 'grpo.pythonPath': python, 'workbench.colorTheme': 'Default Dark Modern' }, before: (ws) => {
    runDir = smallRun(ws);
    fs.mkdirSync(path.join(ws, '.vscode'), { recursive: true });
    fs.writeFileSync(path.join(ws, '.vscode', 'settings.json'), JSON.stringify({ 'grpo.pythonPath': python }, null, 1));
  } });
  const { page } = rig;
  const step = stepWithSignal(runDir);
  log(`replaying step ${step}`);

  // --- the logged group in the inspector ---------------------------------------------------------------
  await runCommand(page, 'GRPO: Inspect Per-Token Advantages');
  const pick = async (title: string, row: string | RegExp) => {
    const box = page.locator('.quick-input-widget', { hasText: title });
    await box.waitFor({ state: 'visible', timeout: 30_000 });
    await box.locator('.quick-input-list .monaco-list-row', { hasText: row }).first().click();
  };
  await pick('Inspect the tokens of which group?', new RegExp(`training step ${step}(?!\\d)`));
  await pick('Which completion?', /#0\s+reward/);
  await pick('Colour the tokens by', 'advantage');
  const inspector = await webviewFrame(page, '[data-completion-index]', MIN);
  const whatIf = inspector.locator('#whatif');
  await whatIf.waitFor({ state: 'visible', timeout: 30_000 });

  // --- What if… → dr_grpo and GSPO → Replay ----------------------------------------------------------------
  await whatIf.click();
  const panel = await webviewFrame(page, '#chooser', MIN);
  await page.locator('.tab', { hasText: `What if: step ${step}` }).first().waitFor({ state: 'visible', timeout: 30_000 });
  assert.equal(await panel.locator('#title').innerText(), `What if: step ${step}`);
  await choose(panel, ['dr_grpo', 'gspo']);
  await panel.locator('#free').evaluate((f) => ((f as HTMLElement & { value: string }).value = ''));
  await panel.locator('#replay').click();
  await until('the replay to start', async () => ['loading', 'result', 'error'].includes((await panel.locator('body').getAttribute('data-phase')) ?? ''), 30_000, 200);
  const t0 = Date.now();
  const phase = await until('the replay\'s answer', async () => {
    const p = await panel.locator('body').getAttribute('data-phase');
    return p === 'result' || p === 'error' ? p : undefined;
  }, 8 * MIN, 1000);
  if (phase === 'error') assert.fail(`the replay failed: ${await panel.locator('#error').innerText()}`);
  log(`replayed in ${Math.round((Date.now() - t0) / 1000)} s: ${await panel.locator('#meta').innerText()}`);

  // --- 3 columns, the run's own first, each with its numbers and ledger line ---------------------------------
  const heads = panel.locator('.wi-head-cell');
  assert.equal(await heads.count(), 3);
  assert.equal(await panel.locator('body').getAttribute('data-columns'), '3');
  const names = await heads.locator('.col-detail').allInnerTexts();
  assert.deepEqual(names, ['the run\'s own settings', 'loss_type=dr_grpo', 'importance_sampling_level=sequence']);
  for (const line of await panel.locator('.ledger-line').allInnerTexts()) assert.match(line, /effective \d+(\.\d)?% · clipped \d+(\.\d)?%.*no signal \d+(\.\d)?%/);
  for (const stats of await heads.locator('.col-stats').allInnerTexts()) assert.match(stats, /loss -?[\d.e-]+\s+grad norm [\d.e-]+/);
  const reproduced = await panel.locator('#reproduced').innerText();
  log(reproduced);
  assert.match(reproduced, /replay (reproduces the logged step to|differs from the logged step by up to) [\d.e-]+/);
  assert.match(await heads.first().locator('.col-repro').innerText(), /reproduces the logged step to [\d.e-]+/);
  // each alternative says whether its update differs from the run's (GSPO with one update per batch does not)
  for (let k = 1; k < 3; k++) assert.match(await heads.nth(k).locator('.col-vsrun').innerText(), /the same update as this run|differs from this run's by up to [\d.e-]+/);

  // --- heatmaps whose cells carry non-zero Δ ------------------------------------------------------------------
  const rows = panel.locator('.wi-row[data-completion-index]');
  const nRows = await rows.count();
  assert.ok(nRows >= 2, `${nRows} rows`);
  for (let k = 0; k < 3; k++) {
    const coloured = await panel.locator(`.wi-cell[data-col="${k}"] .t:is([class*=" p"], [class*=" n"])`).count();
    const seqs = (await panel.locator(`.wi-cell[data-col="${k}"]`).evaluateAll((cs) => cs.map((c) => Number((c as HTMLElement).dataset.deltaSeq))));
    log(`column ${k}: ${coloured} coloured tokens; |Δ seq| max ${Math.max(...seqs.map(Math.abs)).toExponential(2)}`);
    assert.ok(coloured > 0, `column ${k} colours some token`);
    assert.ok(seqs.some((d) => Number.isFinite(d) && d !== 0), `column ${k} has a non-zero Δ seq`);
  }
  // a token's hover says its exact Δ under dr_grpo, and under the others
  const token = panel.locator('.wi-cell[data-col="1"] .t:is([class*=" p"], [class*=" n"])').first();
  await token.hover();
  const tip = panel.locator('.heat-tip');
  await tip.waitFor({ state: 'visible', timeout: 5000 });
  const tipText = await tip.innerText();
  log(`hover: ${tipText.replace(/\n/g, ' | ')}`);
  const delta = num(/Δ log π under loss_type=dr_grpo: ([+−-]?[\d.e+-]+)/.exec(tipText)?.[1] ?? 'NaN');
  assert.ok(Number.isFinite(delta) && delta !== 0, `a coloured token's Δ is not 0: ${tipText}`);
  assert.match(tipText, /under this run's settings: /);
  assert.match(tipText, /under importance_sampling_level=sequence: /);
  assert.match(tipText, /advantage Â [+−-]?[\d.]+/);
  await shot(rig, '41-whatif-hover');
  await page.mouse.move(5, 5);

  // --- rows sorted by |Δ seq| of the sorted column (the first alternative: dr_grpo) -----------------------------
  const sortCol = await panel.locator('body').getAttribute('data-sort');
  assert.equal(sortCol, '1');
  const sorted = await panel.locator(`.wi-row[data-completion-index] .wi-cell[data-col="${sortCol}"]`).evaluateAll((cs) => cs.map((c) => Math.abs(Number((c as HTMLElement).dataset.deltaSeq))));
  assert.deepEqual(sorted, [...sorted].sort((a, b) => b - a), 'rows by |Δ seq| under dr_grpo, largest first');
  // sorting by another column's head re-orders by that column
  await heads.nth(2).click();
  await until('rows sorted by GSPO', async () => (await panel.locator('body').getAttribute('data-sort')) === '2', 10_000, 200);
  const byGspo = await panel.locator('.wi-row[data-completion-index] .wi-cell[data-col="2"]').evaluateAll((cs) => cs.map((c) => Math.abs(Number((c as HTMLElement).dataset.deltaSeq))));
  assert.deepEqual(byGspo, [...byGspo].sort((a, b) => b - a), 'rows by |Δ seq| under GSPO');
  await heads.nth(1).click();
  await until('rows sorted by dr_grpo again', async () => (await panel.locator('body').getAttribute('data-sort')) === '1', 10_000, 200);

  // --- the screenshot: the panel alone, side bar closed -------------------------------------------------------------
  await runCommand(page, 'View: Close Primary Side Bar').catch(() => log('could not close the side bar'));
  await page.waitForTimeout(800);
  await shot(rig, '40-whatif');

  // --- a step whose record is gone: said before asking, then in the trainer's words; its buttons open another -----
  const other = [1, 2, 3].find((s) => s !== step)!;
  fs.rmSync(path.join(runDir, 'replay', `step_${String(other).padStart(6, '0')}`), { recursive: true });
  await page.locator('.tab', { hasText: 'GRPO: training step' }).first().click(); // the inspector, in front again
  const item = inspector.locator(`li.group-item[data-step="${other}"]`);
  await item.click();
  await until(`the inspector showing step ${other}`, async () => (await inspector.locator('body').getAttribute('data-step')) === String(other), 30_000, 300);
  await inspector.locator('#whatif').click();
  await until(`What if: step ${other}`, async () => (await panel.locator('#title').innerText()) === `What if: step ${other}`, 30_000, 300);
  const missing = panel.locator('#missing');
  await missing.waitFor({ state: 'visible', timeout: 10_000 });
  assert.match(await missing.innerText(), new RegExp(`no replay record of step ${other}`));
  await panel.locator('#replay').click();
  await until('the trainer\'s refusal', async () => (await panel.locator('body').getAttribute('data-phase')) === 'error', 2 * MIN, 500);
  const refusal = await panel.locator('#error').innerText();
  log(`refusal: ${refusal}`);
  assert.match(refusal, new RegExp(`step ${other} has no replay record .*replayable steps: ${[1, 2, 3].filter((s) => s !== other).join(', ')}`));
  await shot(rig, '42-whatif-no-record');
  await missing.locator('vscode-button', { hasText: `step ${step}` }).click();
  await until(`back to What if: step ${step}`, async () => (await panel.locator('#title').innerText()) === `What if: step ${step}`, 30_000, 300);
  assert.ok(await missing.isHidden(), 'a replayable step has no note');
});
