/// <reference lib="dom" />
/**
 * End to end, in real VS Code, on a real run made with the trainer's CLI before the window opens (the embedded
 * default, 10 GRPO steps of 16 groups, a greedy held-out evaluation every 2 steps, a group logged every step):
 * "GRPO: Show Prompt Atlas" lists the run's questions by category with the counts the atlas computes from
 * questions.jsonl; a held-out question (never logged as a group) says so with its history; a question whose
 * group was logged opens in the group inspector at that step. Screenshots go to .e2e/screenshots/.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import type { Locator } from 'playwright-core';
import { ATLAS_PAGE, CATEGORIES, CATEGORY_LABEL, type Category } from '../../src/atlas/atlas';
import { AtlasFeed } from '../../src/atlas/atlasFeed';
import { findQuestionSteps } from '../../src/rundir/runDir';
import { log, repo, runCommand, shot, startRig, until, webviewFrame, type Rig } from './rig';

const python = process.env.GRPO_E2E_PYTHON ?? path.join(repo, '.venv', 'bin', 'python');
const MIN = 60_000;
let rig: Rig | undefined;

after(async () => {
  await rig?.close();
});

function atlasRun(workspace: string): string {
  const dir = path.join(workspace, 'runs', 'atlas');
  const env = { ...process.env, PYTHONPATH: path.join(repo, 'trainer') };
  const t0 = Date.now();
  execFileSync(python, ['-m', 'grpo', 'train', '--run-dir', dir, '--quiet', '--set', 'max_steps=10', '--set', 'eval_steps=2', '--set', 'questions_per_step=16',
    '--set', 'log_samples_steps=1', '--set', 'save_steps=0', '--set', 'onnx_export=false'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  log(`atlas run ready in ${Math.round((Date.now() - t0) / 1000)} s`);
  return dir;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The tree row whose label is exactly `label`, scrolled into view with the mouse wheel (the list renders
 * only what it shows). */
async function rowFor(pane: Locator, label: string): Promise<Locator> {
  const row = pane.locator('.monaco-list-row').filter({ has: pane.page().locator('.label-name', { hasText: new RegExp(`^${escapeRe(label)}$`) }) }).first();
  const list = pane.locator('.monaco-list').first();
  return until(`the row "${label}"`, async () => {
    if (await row.isVisible()) return row;
    await list.hover();
    await pane.page().mouse.wheel(0, 200);
    return undefined;
  }, MIN, 300);
}

/** Opens category `c` of the atlas: from the top, scrolled down to its header (an open category above
 * it pushes it down), expanded when it is folded. */
async function openCategory(pane: Locator, c: Category): Promise<void> {
  const page = pane.page();
  await pane.locator('.monaco-list').first().hover();
  for (let i = 0; i < 10; i++) await page.mouse.wheel(0, -10_000);
  const header = pane.locator('.monaco-list-row', { hasText: `${CATEGORY_LABEL[c]} (` }).first();
  await until(`the ${c} header`, async () => {
    if (await header.isVisible()) return true;
    await page.mouse.wheel(0, 300);
    return false;
  }, MIN, 300);
  if ((await header.getAttribute('aria-expanded')) === 'false') await header.click();
  await until(`${c} open`, async () => (await header.getAttribute('aria-expanded')) === 'true', 10_000, 200);
}

test('the prompt atlas lists a real run by category and opens a question in the group inspector', { timeout: 20 * MIN }, async () => {
  assert.ok(fs.existsSync(python), `${python} missing (run scripts/setup.sh)`);
  let runDir = '';
  rig = await startRig({ name: 'atlas', settings: { 'grpo.pythonPath': python }, before: (ws) => (runDir = atlasRun(ws)) });
  const { page } = rig;

  // what the view must show, computed by the atlas's own code from the run's questions.jsonl
  const feed = new AtlasFeed(runDir);
  while (feed.pump().more);
  const counts = feed.atlas.categoryCounts();
  assert.ok(feed.atlas.counts.rows >= 10, 'the trainer wrote questions.jsonl rows');
  assert.equal(feed.atlas.counts.badRows, 0);
  log(`atlas of the run: ${JSON.stringify(counts)}`);

  await runCommand(page, 'GRPO: Show Prompt Atlas');
  const pane = page.locator('.pane', { has: page.locator('.pane-header', { hasText: 'Prompt Atlas' }) });
  for (const c of CATEGORIES) {
    await until(`the ${c} header with its count`, () => pane.locator('.monaco-list-row', { hasText: `${CATEGORY_LABEL[c]} (${counts[c]})` }).first().isVisible(), MIN, 500);
  }
  // room for the atlas: fold the Training view (a tall form) and widen the side bar
  await page.locator('.pane-header', { hasText: 'Training' }).first().click().catch(() => undefined);
  const sashes = await page.locator('.monaco-sash.vertical').all();
  let box: { x: number; y: number; width: number; height: number } | null = null;
  for (const s of sashes) {
    const b = await s.boundingBox().catch(() => null);
    if (b && b.x > 250 && b.x < 450 && b.height > 300) box = b; // between the side bar and the editors
  }
  if (box) {
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + 260, box.y + box.height / 2, { steps: 5 });
    await page.mouse.up();
  }
  // the learned questions, with their sparklines
  if (counts.learned) await openCategory(pane, 'learned');
  await page.waitForTimeout(500);
  await shot(rig, '20-prompt-atlas');

  // a held-out question (its history only: no group of it is logged) says so
  const heldOut = [...feed.atlas.questions()].find((h) => h.evals > 0 && h.train.n === 0 && (h.category === 'learned' || h.category === 'forgotten' || h.category === 'unstable'));
  if (heldOut) {
    await openCategory(pane, heldOut.category);
    const row = await rowFor(pane, heldOut.question);
    await row.click();
    const toast = page.locator('.notification-toast', { hasText: 'was logged in samples.jsonl' });
    await toast.first().waitFor({ state: 'visible', timeout: 30_000 });
    assert.match(await toast.first().innerText(), /held-out \(greedy\): right \d+ of \d+ evaluations/);
    await shot(rig, '21-prompt-atlas-no-group');
    await page.keyboard.press('Escape');
  } else log('no held-out question changed category in this run: the no-group message is not exercised');

  // a question whose group was logged: into the inspector at that step
  const logged = fs.readFileSync(path.join(runDir, 'samples.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { step: number; question: string });
  // the one listed highest (a category lists its first ATLAS_PAGE questions)
  const target = logged.map((g) => ({ g, h: feed.atlas.get(g.question)! }))
    .filter((x) => x.h && x.h.question.length <= 80 && !x.h.question.includes('\n'))
    .map((x) => ({ ...x, at: feed.atlas.list(x.h.category, ATLAS_PAGE).items.indexOf(x.h) }))
    .filter((x) => x.at >= 0).sort((a, b) => a.at - b.at)[0];
  assert.ok(target, 'a logged group whose question is in the atlas');
  const steps = await findQuestionSteps(runDir, (q) => q === target.g.question);
  const category: Category = target.h.category;
  await openCategory(pane, category);
  const row = await rowFor(pane, target.h.question);
  await row.click();
  if (steps.length > 1) {
    await page.locator('.quick-input-widget').waitFor({ state: 'visible', timeout: 30_000 });
    await page.keyboard.press('Enter'); // the newest step
  }
  const inspector = await webviewFrame(page, '[data-completion-index]', 2 * MIN);
  assert.ok(await inspector.locator('[data-completion-index]').count() >= 2, 'the group\'s completions in the inspector');
  const tab = page.locator('.tab', { hasText: `training step ${steps[steps.length - 1]} of atlas` });
  await tab.first().waitFor({ state: 'visible', timeout: 30_000 });
  await shot(rig, '22-prompt-atlas-inspector');
});
