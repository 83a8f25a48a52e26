/// <reference lib="dom" />
/**
 * End to end, in real VS Code, with a short real training run that logged its groups (samples.jsonl):
 *  - "GRPO: Edit a Completion and Re-score It" → the logged step → a wrong completion: it opens editable, the
 *    line above it shows its logged reward and advantage;
 *  - replacing its final answer with the right one (its steps left wrong: the reward hack an outcome reward
 *    allows): the line shows reward 1.00 (was 0.00), the advantage the training function gives the group with
 *    the edit in place (computed here by the trainer's own `compute_advantages`), the group's advantages and
 *    the step rewards; hovering a token shows its KL and π_θ/π_ref, re-scored through `python -m grpo serve`;
 *  - changing the final answer to a wrong one: reward 0.00 again, the group's logged advantages back.
 * The screenshot goes to docs/img/rescore.png (and .e2e/screenshots/).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { listCheckpoints } from '../../src/rundir/runDir';
import type { GroupRecord } from '../../src/shared/records';
import { log, repo, runCommand, shot, startRig, until, type Rig } from './rig';

const python = process.env.GRPO_E2E_PYTHON ?? path.join(repo, '.venv', 'bin', 'python');
const MIN = 60_000;
let rig: Rig | undefined;

after(async () => {
  await rig?.close();
});

const trainerEnv = () => ({ ...process.env, PYTHONPATH: path.join(repo, 'trainer') });

/**
 * A short real run logging one group a step: SFT long enough that completions are worked solutions, mostly
 * wrong (some right, so that two GRPO steps at a high learning rate move the policy off its reference).
 */
function tinyRun(workspace: string): string {
  const dir = path.join(workspace, 'runs', 'tiny');
  execFileSync(python, ['-m', 'grpo', 'train', '--run-dir', dir, '--quiet', '--set', 'sft_steps=300', '--set', 'max_steps=2', '--set', 'eval_size=8',
    '--set', 'save_steps=0', '--set', 'num_generations=4', '--set', 'questions_per_step=16', '--set', 'log_samples_steps=1', '--set', 'learning_rate=0.001',
    '--set', 'onnx_export=false'],
  { env: trainerEnv(), stdio: ['ignore', 'ignore', 'inherit'] });
  assert.ok(listCheckpoints(dir).length > 0, 'the tiny run wrote a checkpoint');
  return dir;
}

/** The trainer's own answer: the group advantages of some rewards (the run's settings are the defaults). */
const ADVANTAGES = `
import json, sys
from grpo import groups
from grpo.config import Config
from grpo.rewards import Scored
r = json.loads(sys.argv[1]); c = Config()
print(json.dumps(groups.compute_advantages(None, None, Scored(r, [False] * len(r)), len(r), c.reward, c.scale_rewards)[1].tolist()))
`;
const py = (code: string, arg: string) => execFileSync(python, ['-c', code, arg], { env: trainerEnv(), encoding: 'utf8' });

/** The CodeLens lines above the completion, joined. */
async function lensText(page: Rig['page']): Promise<string> {
  const lenses = await page.locator('.monaco-editor .codelens-decoration').allInnerTexts();
  return lenses.join(' | ').replace(/\u00a0/g, ' ');
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const sign = (v: number) => {
  const r = Math.round(v * 100) / 100;
  return r === 0 ? '0.00' : `${r < 0 ? '\u2212' : '+'}${Math.abs(r).toFixed(2)}`;
};

test('edit a logged completion: its reward, the group\'s advantages and per-token KL are re-scored in the editor', { timeout: 15 * MIN }, async () => {
  assert.ok(fs.existsSync(python), `${python} missing (run scripts/setup.sh)`);
  let runDir = '';
  rig = await startRig({ name: 'rescore', settings: { 'grpo.pythonPath': python, 'editor.hover.delay': 200, 'editor.hover.above': false, 'editor.minimap.enabled': false }, before: (ws) => {
    runDir = tinyRun(ws);
  } });
  const { page } = rig;

  // a logged group with a wrong completion in it, preferably one with steps before its final answer
  const logged = fs.readFileSync(path.join(runDir, 'samples.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as GroupRecord);
  const wrong = (g: GroupRecord) => g.completions.map((c, i) => ({ c, i })).filter(({ c, i }) => !g.correct?.[i] && /\S/.test(c.split('\n')[0]));
  const group = logged.find((g) => wrong(g).some(({ c }) => /\n#### \S+$/.test(c))) ?? logged.find((g) => wrong(g).length) ?? logged[0];
  const candidates = wrong(group);
  assert.ok(candidates.length, `a wrong completion to fix in ${JSON.stringify(group.completions)}`);
  const index = (candidates.find(({ c }) => /\n#### \S+$/.test(c)) ?? candidates[0]).i;
  const lines = group.completions[index].split('\n');
  const right = [...lines.slice(0, -1), `#### ${group.answer}`].join('\n');
  const rewards = group.rewards.map((r, i) => (i === index ? 1 : r));
  const want: number[] = JSON.parse(py(ADVANTAGES, JSON.stringify(rewards)));
  log(`step ${group.step}, completion ${index} of ${group.completions.length} (${JSON.stringify(group.completions[index])}), logged rewards ${JSON.stringify(group.rewards)}; right: ${JSON.stringify(right)}; advantages then ${JSON.stringify(want)}`);

  // --- open it editable from the palette ------------------------------------------------------------------
  await runCommand(page, 'GRPO: Edit a Completion and Re-score It');
  const pick = async (title: string, filter: string) => {
    const box = page.locator('.quick-input-widget', { hasText: title });
    await box.waitFor({ state: 'visible', timeout: 30_000 });
    await box.locator('input').fill(filter);
    await box.locator('.quick-input-list .monaco-list-row', { hasText: filter }).first().waitFor({ state: 'visible', timeout: 10_000 });
    await page.keyboard.press('Enter');
  };
  await pick('Edit a completion of which group?', `training step ${group.step}`);
  await pick('Edit which completion?', `#${index} `);
  const loggedLine = await until('the logged reward above the completion', async () => {
    const t = await lensText(page);
    return /logged at step/.test(t) ? t : undefined;
  }, MIN);
  log(`lens before editing: ${loggedLine}`);
  assert.match(loggedLine, new RegExp(esc(`GRPO reward ${group.rewards[index].toFixed(2)} · advantage ${sign(group.advantages[index])} (logged at step ${group.step})`)));

  // --- the right final answer in place of its last line --------------------------------------------------------
  const editor = page.locator('.monaco-editor .view-lines').first();
  await editor.click();
  await page.keyboard.press('Control+End');
  await page.keyboard.press('Shift+Home');
  await page.keyboard.type(`#### ${group.answer}`, { delay: 15 });
  await until('the edit in the editor', async () => (await editor.innerText()).replace(/\u00a0/g, ' ').includes(`#### ${group.answer}`), 10_000);
  const fixed = await until('the re-scored reward', async () => {
    const t = await lensText(page);
    return /reward 1\.00 \(was/.test(t) ? t : undefined;
  }, 4 * MIN);
  log(`lens after the fix: ${fixed}`);
  assert.match(fixed, new RegExp(esc(`GRPO reward 1.00 (was ${group.rewards[index].toFixed(2)}) · advantage ${sign(want[index])} (was ${sign(group.advantages[index])}) · right ✓`)));
  assert.match(fixed, new RegExp(esc(`group advantages ${want.map((a, i) => (i === index ? `[${sign(a)}]` : sign(a))).join(' ')}`)));
  const steps = /steps((?: \d+(?:✓|✗))+)/.exec(fixed)?.[1].trim().split(' ') ?? [];
  assert.equal(steps.length, lines.length, 'a step reward per line');
  assert.ok(steps[steps.length - 1].endsWith('✓'), 'the final answer step is right');

  // the hover on the edited text's tokens (the new final answer): its KL, π_θ/π_ref, the token's advantage and
  // step, from the re-score
  const line = page.locator('.monaco-editor .view-line', { hasText: `#### ${group.answer}` }).first();
  const hover = page.locator('.monaco-hover:visible, .monaco-resizable-hover:visible').filter({ hasText: 'π_ref' }).first();
  const hoverText = await until('a hover with π_θ/π_ref', async () => {
    const box = await line.locator('span').first().boundingBox();
    if (!box) return undefined;
    const charWidth = box.width / `#### ${group.answer}`.length; // a monospaced line
    await page.mouse.move(5, 5);
    await page.waitForTimeout(300);
    await page.mouse.move(box.x + 5.5 * charWidth, box.y + box.height / 2); // past "#### ": on the answer
    await hover.waitFor({ state: 'visible', timeout: 3000 });
    return (await hover.innerText()).trim();
  }, 2 * MIN, 1000);
  log(`hover: ${hoverText.replace(/\s+/g, ' ').slice(0, 300)}`);
  assert.match(hoverText, /KL \(k3, to the reference\)\s*\n?\s*\d+\.\d+/);
  assert.match(hoverText, /ratio π_θ\/π_ref\s*\n?\s*\d+\.\d+/);
  assert.match(hoverText, new RegExp(`advantage Â\\s*\\n?\\s*${esc(want[index].toFixed(4).slice(0, -1))}`));
  assert.match(hoverText, new RegExp(`reasoning step ${lines.length}\\s*\\n?\\s*reward 1\\.000`), 'the final answer is the last step, now right');
  assert.match(hoverText, /your edit of completion \d+ \(logged at training step \d+\), re-scored by step_\d+ via python -m grpo serve of run tiny/);
  await shot(rig, '20-rescore-fixed');
  const part = await page.locator('.part.editor').boundingBox();
  assert.ok(part, 'the editor area');
  // the editor's top, where the lines, the text and the hover are: legible at the docs' width
  await page.screenshot({ path: path.join(repo, 'docs', 'img', 'rescore.png'), clip: { x: part.x, y: part.y, width: Math.min(part.width, 1000), height: Math.min(part.height, 400) } });

  // --- and a wrong final answer again: the group is back to its logged advantages ------------------------------
  await page.mouse.move(5, 5);
  await editor.click();
  await page.keyboard.press('Control+End');
  await page.keyboard.press('Backspace');
  await page.keyboard.type(String((Number(right.slice(-1)) + 1) % 10), { delay: 15 }); // the answer's last digit, changed
  const broken = await until('the reward back at 0', async () => {
    const t = await lensText(page);
    return /GRPO reward 0\.00 \(was/.test(t) ? t : undefined;
  }, 2 * MIN);
  log(`lens after breaking the answer: ${broken}`);
  assert.match(broken, / · wrong ✗/);
  const back: number[] = JSON.parse(py(ADVANTAGES, JSON.stringify(group.rewards.map((r, i) => (i === index ? 0 : r)))));
  assert.match(broken, new RegExp(esc(`advantage ${sign(back[index])} (was`)));
  await shot(rig, '21-rescore-broken');
});
