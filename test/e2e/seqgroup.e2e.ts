/// <reference lib="dom" />
/**
 * End to end, in real VS Code, with a sequence-level group: what `python -m grpo import-trl` makes of a TRL
 * completions table (trl_import.groups_from_parquet on a real parquet file: text, rewards, advantages, no
 * per-token arrays), logged in a run of a tiny subword-tokenizer checkpoint (test/fixtures/tiny_hf_run.py):
 *  - "GRPO: Inspect Per-Token Advantages" → the logged step → a completion: the group inspector shows every
 *    row with lengths in characters and, in place of the heatmap, the note that per-token values are scored
 *    on demand;
 *  - the completion opens in an editor and is scored there on demand (no ONNX export: `python -m grpo serve`),
 *    so hovering a token shows its KL.
 * Screenshots go to .e2e/screenshots/.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { readSampleGroup } from '../../src/rundir/runDir';
import { log, repo, runCommand, shot, startRig, until, webviewFrame, type Rig } from './rig';

const python = process.env.GRPO_E2E_PYTHON ?? path.join(repo, '.venv', 'bin', 'python');
const MIN = 60_000;
let rig: Rig | undefined;

after(async () => {
  await rig?.close();
});

/** A TRL completions table of one group of 4 (TRL's columns), turned into a group as import-trl does. */
const IMPORT_GROUP = `
import json, sys, pyarrow as pa, pyarrow.parquet as pq
from pathlib import Path
from grpo.integrations.trl_import import groups_from_parquet
run = Path(sys.argv[1])
prompt = "<|im_start|>user\\nWhat is 12 plus 30?<|im_end|>\\n<|im_start|>assistant\\n"
table = {"step": [1] * 4, "prompt": [prompt] * 4,
         "completion": ["The answer is 42.", "It is 12 + 30 = 42, I think.", "forty", "42"],
         "digits": [1.0, 1.0, 0.0, 1.0], "brevity": [0.5, -0.5, 0.0, 0.5], "advantage": [0.6, -0.2, -1.3, 0.9]}
out = run.parent.parent / "trl-out" / "completions"  # TRL's output_dir, outside the runs folder
out.mkdir(parents=True, exist_ok=True)
pq.write_table(pa.table(table), out / "completions_00001.parquet")
rec = groups_from_parquet(out / "completions_00001.parquet", None)
with open(run / "samples.jsonl", "a") as f:
    f.write(json.dumps(rec) + "\\n")
`;

test('a sequence-level (imported) group: the inspector shows it, and an opened completion is scored on demand', { timeout: 10 * MIN }, async () => {
  assert.ok(fs.existsSync(python), `${python} missing (run scripts/setup.sh)`);
  let runDir = '';
  rig = await startRig({ name: 'seqgroup', settings: { 'grpo.pythonPath': python, 'editor.hover.delay': 200 }, before: (ws) => {
    runDir = path.join(ws, 'runs', 'trl-imported');
    const env = { ...process.env, PYTHONPATH: path.join(repo, 'trainer') };
    execFileSync(python, [path.join(repo, 'test', 'fixtures', 'tiny_hf_run.py'), runDir], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    execFileSync(python, ['-c', IMPORT_GROUP, runDir], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  } });
  const { page } = rig;
  const logged = await readSampleGroup(runDir, 1);
  assert.ok(logged?.ok && !logged.value.tokens && logged.value.completions.length === 4, JSON.stringify(logged));

  await runCommand(page, 'GRPO: Inspect Per-Token Advantages');
  const pick = async (title: string, row: string | RegExp) => {
    const box = page.locator('.quick-input-widget', { hasText: title });
    await box.waitFor({ state: 'visible', timeout: 30_000 });
    await box.locator('.quick-input-list .monaco-list-row', { hasText: row }).first().click();
  };
  await pick('Inspect the tokens of which group?', 'training step 1');
  await pick('Which completion?', /#1\s+reward/);

  const inspector = await webviewFrame(page, 'body[data-level="sequence"]', MIN);
  assert.equal(await inspector.locator('[data-completion-index]').count(), 4);
  assert.ok(await inspector.locator('#heat-note').isVisible(), 'the note in place of the heatmap');
  assert.match(await inspector.locator('#heat-note').innerText(), /sequence-level group \(imported\).*score it token by token/);
  // the length column, found by its header (a column per reward function may come before it)
  const heads = (await inspector.locator('thead th').allInnerTexts()).map((h) => h.trim());
  const col = heads.findIndex((h) => /^characters/.test(h));
  assert.ok(col >= 0, `a 'characters' column among ${heads.join(', ')}`);
  assert.equal(await inspector.locator('tr[data-completion-index="1"] td').nth(col).innerText(), String('It is 12 + 30 = 42, I think.'.length));
  assert.equal(await inspector.locator('.heat-row').count(), 0);

  // the completion, opened beside, scored through serve (the run has no ONNX export), with a KL hover
  const line = page.locator('.monaco-editor .view-line', { hasText: 'I think.' }).first();
  const hover = page.locator('.monaco-hover:visible, .monaco-resizable-hover:visible').filter({ hasText: 'KL' }).first();
  const text = await until('a KL hover on the opened completion', async () => {
    const box = await line.boundingBox();
    if (!box) return undefined;
    await page.mouse.move(5, 5);
    await page.waitForTimeout(300);
    await page.mouse.move(box.x + 40, box.y + box.height / 2);
    await hover.waitFor({ state: 'visible', timeout: 3000 }).catch(() => undefined);
    const t = (await hover.isVisible()) ? (await hover.innerText()).trim() : '';
    return /KL \(k3, to the reference\)/.test(t) ? t : undefined;
  }, 4 * MIN, 1000);
  log(`hover: ${text.replace(/\s+/g, ' ').slice(0, 260)}`);
  assert.match(text, /PyTorch via python -m grpo serve: step_000001 of run trl-imported vs its reference, as a continuation of the question/);
  assert.match(text, /KL \(k3, to the reference\)\s*\n?\s*-?\d+\.\d+/);
  await shot(rig, '30-sequence-level-group');
});
