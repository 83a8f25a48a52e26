/// <reference lib="dom" />
/**
 * End to end, in real VS Code, with a short real training run in the workspace (made with the trainer's
 * CLI before the window opens; its checkpoints carry their ONNX export):
 *  - open a text file → "GRPO: Score Document Against Reference" → hovering a token shows its KL;
 *  - "GRPO: Sample Group" with a typed question → the group inspector shows ≥ 2 completion rows
 *    (`[data-completion-index]`, two iframes deep);
 *  - a question with characters outside the vocabulary gets a clear error and leaves the editor as it was;
 *  - a subword-tokenizer checkpoint (a tiny random Qwen2, byte-level BPE, test/fixtures/tiny_hf_run.py):
 *    Score Document on a document with non-ASCII text shows the KL hover once via ONNX in the editor (a run
 *    whose checkpoint has onnx/) and once via `python -m grpo serve` (the same weights without onnx/), each
 *    hover naming its path, with the same KL for the same token.
 * Screenshots go to .e2e/screenshots/.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { listCheckpoints } from '../../src/rundir/runDir';
import { log, repo, runCommand, shot, startRig, until, webviewFrame, type Rig } from './rig';

const python = process.env.GRPO_E2E_PYTHON ?? path.join(repo, '.venv', 'bin', 'python');
const MIN = 60_000;
let rig: Rig | undefined;

after(async () => {
  await rig?.close();
});

/**
 * A short real run (a few SFT steps, then two GRPO steps of 16 groups at a learning rate that moves the
 * policy visibly off its reference once a group carries signal); exports the latest checkpoint if the
 * trainer did not.
 */
function tinyRun(workspace: string): string {
  const dir = path.join(workspace, 'runs', 'tiny');
  const env = { ...process.env, PYTHONPATH: path.join(repo, 'trainer') };
  const t0 = Date.now();
  execFileSync(python, ['-m', 'grpo', 'train', '--run-dir', dir, '--quiet', '--set', 'sft_steps=30', '--set', 'max_steps=2', '--set', 'eval_size=8',
    '--set', 'save_steps=0', '--set', 'num_generations=4', '--set', 'questions_per_step=16', '--set', 'log_samples_steps=1', '--set', 'learning_rate=0.001'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const cps = listCheckpoints(dir);
  assert.ok(cps.length > 0, 'the tiny run wrote a checkpoint');
  const latest = cps[cps.length - 1].path;
  if (!fs.existsSync(path.join(latest, 'onnx', 'manifest.json'))) {
    log(`no automatic ONNX export in ${path.basename(latest)}: exporting it with the CLI`);
    execFileSync(python, ['-m', 'grpo', 'export-onnx', '--checkpoint', latest, '--out', path.join(latest, 'onnx')], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  }
  log(`tiny run ready in ${Math.round((Date.now() - t0) / 1000)} s: ${cps.map((c) => c.name).join(', ')}`);
  return dir;
}

/**
 * Two runs of one tiny subword-tokenizer checkpoint: `hf-onnx` (exported) and `hf-serve` (a copy without
 * onnx/). Made before the tiny run, so that the tiny run is the most recent one (status.json's updated_at).
 */
function subwordRuns(workspace: string): void {
  const env = { ...process.env, PYTHONPATH: path.join(repo, 'trainer') };
  const withOnnx = path.join(workspace, 'runs', 'hf-onnx');
  execFileSync(python, [path.join(repo, 'test', 'fixtures', 'tiny_hf_run.py'), withOnnx], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const latest = path.join(withOnnx, 'checkpoints', 'step_000001');
  execFileSync(python, ['-m', 'grpo', 'export-onnx', '--checkpoint', latest, '--out', path.join(latest, 'onnx')], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  fs.cpSync(withOnnx, path.join(workspace, 'runs', 'hf-serve'), { recursive: true, filter: (src) => path.basename(src) !== 'onnx' });
}

async function openFile(page: Rig['page'], name: string, lineText: string): Promise<void> {
  await until(`${name} open in an editor`, async () => {
    await page.keyboard.press('Escape');
    await page.keyboard.press('Control+P');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible', timeout: 5000 });
    await input.fill(name);
    await page.locator('.quick-input-list .monaco-list-row', { hasText: name }).first().waitFor({ state: 'visible', timeout: 5000 });
    await page.keyboard.press('Enter');
    await page.locator('.monaco-editor .view-line', { hasText: lineText }).first().waitFor({ state: 'visible', timeout: 5000 });
    return true;
  }, MIN, 1000);
}

/** Hovers the token `dx` pixels into the first line showing `lineText` until a hover says `want`. */
async function hoverToken(page: Rig['page'], lineText: string, want: RegExp, timeoutMs: number, dx = 12): Promise<string> {
  const line = page.locator('.monaco-editor .view-line', { hasText: lineText }).first();
  const hover = page.locator('.monaco-hover:visible, .monaco-resizable-hover:visible').filter({ hasText: 'KL' }).first();
  return until(`a hover with the token's KL matching ${want}`, async () => {
    const box = await line.boundingBox();
    if (!box) return undefined;
    // Off the text and any open hover first (a hover kept open over the same token would not be re-asked).
    await page.mouse.move(5, 5);
    await page.waitForTimeout(300);
    await page.mouse.move(box.x + dx, box.y + box.height / 2);
    await hover.waitFor({ state: 'visible', timeout: 3000 });
    const text = (await hover.innerText()).trim();
    return want.test(text) ? text : undefined;
  }, timeoutMs, 1000);
}

/** The hover's k3 KL value. */
const hoverKl = (text: string) => Number(/KL \(k3, to the reference\)\s*([-\d.e]+)/.exec(text)?.[1]);

/** "GRPO: Sample Group", then the question typed into its input box (not the palette it replaced). */
async function askQuestion(page: Rig['page'], question: string): Promise<void> {
  await runCommand(page, 'GRPO: Sample Group');
  const box = page.locator('.quick-input-widget', { hasText: 'Sample a group from' });
  await box.waitFor({ state: 'visible', timeout: 30_000 });
  const input = box.locator('input');
  await until('the question in the input box', async () => {
    await input.fill(question);
    return (await input.inputValue()) === question;
  }, 10_000, 300);
  await page.keyboard.press('Enter');
}

test('score a document against the reference and hover a token; sample a group into the inspector', { timeout: 20 * MIN }, async () => {
  assert.ok(fs.existsSync(python), `${python} missing (run scripts/setup.sh)`);
  rig = await startRig({ name: 'inspect', settings: { 'grpo.pythonPath': python, 'editor.hover.delay': 200 }, before: (ws) => {
    subwordRuns(ws);
    tinyRun(ws);
    fs.writeFileSync(path.join(ws, 'solution.txt'), '3+1=4\n4*3=12\n12+4=16\n#### 16\n');
    fs.writeFileSync(path.join(ws, 'notes.md'), 'Héllo wörld — naïve café 😀 日本語\nx = ∑ 3/4\n#### 42\n');
  } });
  const { page } = rig;

  // --- Score Document Against Reference, then hover a token ------------------------------------------
  await openFile(page, 'solution.txt', '4*3=12');
  const before = fs.readFileSync(path.join(rig.workspace, 'solution.txt'), 'utf8');
  await runCommand(page, 'GRPO: Score Document Against Reference');
  log('score requested');
  const hoverText = await hoverToken(page, '4*3=12', /KL/, 2 * MIN);
  log(`hover: ${hoverText.replace(/\s+/g, ' ').slice(0, 200)}`);
  assert.match(hoverText, /KL \(k3, to the reference\)\s*\n?\s*\d+\.\d+/);
  assert.match(hoverText, /ONNX in the editor: step_\d+ of run tiny/);
  await shot(rig, '10-score-document-hover');
  assert.equal(fs.readFileSync(path.join(rig.workspace, 'solution.txt'), 'utf8'), before, 'scoring leaves the document untouched');
  const shaded = await page.locator('.monaco-editor .view-overlays div[class*="ced-"], .monaco-editor .view-line span[class*="ced-"]').count();
  const seqKl = Number(/sequence KL ([\d.e-]+)/.exec(hoverText)?.[1]);
  // an unreadable sequence KL would skip the shading check below: it fails instead
  assert.ok(Number.isFinite(seqKl) && seqKl >= 0, `no sequence KL in the hover: ${hoverText}`);
  log(`${shaded} decorated spans, sequence KL ${seqKl}`);
  // Shading marks tokens whose KL is above zero: a policy identical to its reference has none to mark.
  if (seqKl > 0) assert.ok(shaded > 0, 'tokens with KL > 0 are shaded');
  else log('the policy still equals its reference (no group carried signal): no shading expected');
  await page.mouse.move(5, 5);

  // --- A question with characters outside the vocabulary: a clear error, nothing else changes -----------
  await askQuestion(page, '1+2 ☃');
  const err = page.locator('.notifications-toasts .notification-toast', { hasText: 'vocabulary' }).first();
  await err.waitFor({ state: 'visible', timeout: 4 * MIN });
  const errText = (await err.innerText()).replace(/\s+/g, ' ');
  log(`error: ${errText}`);
  assert.match(errText, /☃/);
  await shot(rig, '11-sample-group-bad-question');
  assert.equal((await page.locator('.monaco-editor .view-lines').first().innerText()).replace(/\u00a0/g, ' ').trim(), before.trim(), 'the editor is untouched');
  await page.keyboard.press('Escape');

  // --- Sample Group with a typed question → the inspector ---------------------------------------------
  await askQuestion(page, '(3+1)*3');
  log('sample group requested');
  const inspector = await webviewFrame(page, '[data-completion-index]', 4 * MIN);
  const rows = await inspector.locator('[data-completion-index]').count();
  log(`inspector rows: ${rows}`);
  assert.ok(rows >= 2, `${rows} completion rows`);
  assert.equal(await inspector.locator('#question').innerText(), '(3+1)*3');
  assert.ok(Number(await inspector.locator('body').getAttribute('data-tokens')) > 0, 'the heatmap drew tokens');
  await shot(rig, '12-group-inspector');
});

test('a subword-tokenizer checkpoint: Score Document shows the KL hover via ONNX, and via serve without onnx/', { timeout: 10 * MIN }, async () => {
  assert.ok(rig, 'the rig of the first test');
  const { page } = rig;
  // Score Document scores against the Runs view's selection, else the live run, else the most recent run:
  // nothing is selected here, so each run in turn becomes the most recent (as a run that just stepped).
  const scoreAgainst = async (run: string, want: RegExp, timeoutMs: number): Promise<string> => {
    const status = path.join(rig!.workspace, 'runs', run, 'status.json');
    fs.writeFileSync(status, JSON.stringify({ ...JSON.parse(fs.readFileSync(status, 'utf8')), updated_at: Date.now() / 1000 }));
    await openFile(page, 'notes.md', 'wörld');
    await runCommand(page, 'GRPO: Score Document Against Reference');
    log(`score against ${run} requested`);
    const text = await hoverToken(page, 'wörld', want, timeoutMs, 40);
    log(`hover (${run}): ${text.replace(/\s+/g, ' ').slice(0, 260)}`);
    assert.match(text, /KL \(k3, to the reference\)\s*\n?\s*-?\d+\.\d+/);
    return text;
  };
  const viaOnnx = await scoreAgainst('hf-onnx', /ONNX in the editor: step_000001 of run hf-onnx/, 2 * MIN);
  await shot(rig, '13-subword-score-onnx');
  const viaServe = await scoreAgainst('hf-serve', /PyTorch via python -m grpo serve: step_000001 of run hf-serve/, 4 * MIN);
  await shot(rig, '14-subword-score-serve');
  // The same weights and the same token: the two paths agree (the hover rounds: 5 decimals, or 3
  // significant digits below 1e-3).
  const a = hoverKl(viaOnnx);
  const b = hoverKl(viaServe);
  log(`KL of the hovered token: ONNX ${a}, serve ${b}`);
  assert.ok(Number.isFinite(a) && Number.isFinite(b));
  assert.ok(Math.abs(a - b) <= 1e-4 + 0.01 * Math.abs(a), `ONNX ${a} vs serve ${b}`);
  const which = (t: string) => /GRPO token (\d+\/\d+)/.exec(t)?.[1];
  assert.ok(which(viaOnnx), 'the hover names the token');
  assert.equal(which(viaOnnx), which(viaServe), 'the same token, counted the same way');
});
