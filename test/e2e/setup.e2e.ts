/// <reference lib="dom" />
/**
 * End to end, in real VS Code with the .vsix installed and no `grpo.pythonPath`: "GRPO: Set Up Python
 * Environment" → "Workspace .venv" → the progress notification → "Python environment ready" → the workspace
 * settings name the venv, whose marker says complete → "GRPO: Start Training" trains with it.
 *
 * Nothing is downloaded: the workspace's .venv exists beforehand, layered on the project's .venv
 * (test/fixtures/venv.ts: pip finds the pinned packages installed), `grpo.setup.pipArgs` is `--no-index`,
 * and the CPU wheel index points at a closed local port, so the set-up takes its "unreachable → PyPI" path.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { readSetupMarker } from '../../src/environment/python';
import { layeredVenv } from '../fixtures/venv';
import { isPidAlive, readStatus } from '../../src/rundir/runDir';
import { cleanUp, log, repo, runCommand, shot, startRig, statusBarText, until, type Rig } from './rig';

const python = process.env.GRPO_E2E_PYTHON ?? path.join(repo, '.venv', 'bin', 'python');
const MIN = 60_000;
let rig: Rig | undefined;
let runDir: string | undefined;

after(() => cleanUp(rig, runDir));

async function notification(page: Rig['page'], text: RegExp, timeoutMs: number): Promise<string> {
  return until(`a notification matching ${text}`, async () => {
    const all = await page.locator('.notifications-toasts .notification-list-item-message').allInnerTexts();
    return all.find((t) => text.test(t));
  }, timeoutMs, 300);
}

test('Set Up Python Environment makes the workspace .venv usable and selects it; Start Training runs with it', { timeout: 15 * MIN }, async () => {
  assert.ok(fs.existsSync(python), `${python} missing (run scripts/setup.sh)`);
  rig = await startRig({
    name: 'setup', settings: { 'grpo.setup.pipArgs': ['--no-index'] }, env: { GRPO_TORCH_INDEX_URL: 'http://127.0.0.1:9/whl/cpu' },
    before: (ws) => void layeredVenv(python, path.join(ws, '.venv')),
  });
  const { page, workspace } = rig;
  const venvPy = path.join(workspace, '.venv', 'bin', 'python');

  await runCommand(page, 'GRPO: Set Up Python Environment');
  const row = page.locator('.quick-input-list .monaco-list-row', { hasText: 'Workspace .venv' }).first();
  await row.waitFor({ state: 'visible', timeout: 30_000 });
  assert.match(await row.innerText(), /exists: the requirements are installed into it/);
  await row.click();
  const warned = await notification(page, /CPU wheel index http:\/\/127\.0\.0\.1:9\/whl\/cpu is not reachable/, 2 * MIN);
  log(`warning: ${warned.slice(0, 120)}…`);
  const ready = await notification(page, /Python environment ready/, 5 * MIN);
  log(ready);
  await shot(rig, 'setup-01-ready');
  assert.match(ready, /grpo\.pythonPath is set in the workspace settings/);
  const settings = JSON.parse(fs.readFileSync(path.join(workspace, '.vscode', 'settings.json'), 'utf8'));
  assert.equal(settings['grpo.pythonPath'], venvPy);
  assert.equal(readSetupMarker(venvPy)?.complete, true);

  await runCommand(page, 'GRPO: Start Training');
  const runs = path.join(workspace, 'runs');
  runDir = await until('a run directory with status.json', () =>
    fs.existsSync(runs) ? fs.readdirSync(runs).map((n) => path.join(runs, n)).find((p) => fs.existsSync(path.join(p, 'status.json'))) : undefined, 3 * MIN);
  const step = await until('"step N" in the status bar', async () => {
    const t = await statusBarText(page);
    return /step [1-9]\d*/.test(t) ? t : undefined;
  }, 3 * MIN);
  log(`training with the set-up venv: ${step}`);
  const st = readStatus(runDir);
  assert.ok(st?.ok && st.value.pid && isPidAlive(st.value.pid));
  const argv0 = fs.readFileSync(`/proc/${st.value.pid}/cmdline`, 'utf8').split('\0')[0];
  assert.equal(argv0, venvPy, 'the trainer runs on the selected interpreter');
  await runCommand(page, 'GRPO: Stop Training');
  await until('status.json to say stopped', () => {
    const s = readStatus(runDir!);
    return s?.ok && s.value.state === 'stopped';
  }, 5 * MIN, 1000);
});
