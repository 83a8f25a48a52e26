/// <reference lib="dom" />
/**
 * End to end, in real VS Code: a run directory is data (issue 21).
 *  - A run whose config.json names user code (`reward_function = my_rewards:score`, a module in the
 *    workspace that leaves a marker file when imported): "GRPO: Sample Group" first shows a modal naming the
 *    module, its setting and its file; "Open Without It" starts `serve --no-user-code`, the group still
 *    arrives in the inspector, and the module was never imported.
 *  - "GRPO: Resume Training" on that run asks again with only "Import and Resume" (training needs the code);
 *    dismissed, nothing starts.
 *  - A second run is being written by a real trainer (`train --resume` with a long max_steps) started by the
 *    test from a script of its own, as a user's script using grpo's attach() would be: its command line does
 *    not name grpo, so the Runs view takes it for crashed and offers to resume it. "GRPO: Resume Training" on
 *    it says it "is being written by another process (pid N on HOST); it was not resumed." and no second
 *    trainer starts.
 * Screenshots go to .e2e/screenshots/.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { listRuns, processIdentity, readStatus } from '../../src/rundir/runDir';
import { log, repo, runCommand, shot, startRig, until, webviewFrame, type Rig } from './rig';

const python = process.env.GRPO_E2E_PYTHON ?? path.join(repo, '.venv', 'bin', 'python');
const MIN = 60_000;
let rig: Rig | undefined;
let job: ChildProcess | undefined;
let jobDir: string | undefined;

after(async () => {
  if (job && job.exitCode === null && job.signalCode === null) job.kill('SIGKILL'); // a stopped process dies of SIGKILL too
  if (jobDir) fs.rmSync(jobDir, { recursive: true, force: true });
  await rig?.close();
});

/** Imported: leaves IMPORTED beside itself. */
const MY_REWARDS = `import pathlib
pathlib.Path(__file__).with_name("IMPORTED").write_text("my_rewards was imported\\n")


def score(completions, **kwargs):
    return [float(len(c) % 2) for c in completions]
`;

/** The test's trainer: \`train --resume\` of JOB_RUN_DIR, started from a script whose command line names
 * neither grpo nor the run (a user's own script using attach() looks the same to the extension). */
const JOB = `import os, runpy, sys
sys.argv = ["trainer", "train", "--resume", "--quiet", "--run-dir", os.environ["JOB_RUN_DIR"], "--set", "max_steps=100000"]
runpy.run_module("g" + "rpo", run_name="__main__", alter_sys=True)
`;

/** A venv outside the repository (so that no path on the job's command line holds "grpo") that sees the
 * project's packages through a .pth file. */
function jobPython(dir: string): string {
  execFileSync(python, ['-m', 'venv', '--without-pip', path.join(dir, 'venv')]);
  const py = path.join(dir, 'venv', 'bin', 'python');
  const site = (p: string) => execFileSync(p, ['-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'], { encoding: 'utf8' }).trim();
  fs.writeFileSync(path.join(site(py), 'project.pth'), fs.realpathSync(site(python)) + '\n');
  return py;
}

/** A dialog (modal message) with `text`, and its text. */
async function dialog(page: Rig['page'], text: string, timeoutMs: number): Promise<{ box: ReturnType<Rig['page']['locator']>; text: string }> {
  const box = page.locator('.monaco-dialog-box', { hasText: text }).first();
  await box.waitFor({ state: 'visible', timeout: timeoutMs });
  return { box, text: (await box.innerText()).replace(/\u00a0/g, ' ') };
}

/** A dialog's buttons but Cancel, sorted (the order on screen depends on the platform). */
const buttons = async (box: ReturnType<Rig['page']['locator']>) => (await box.locator('.dialog-buttons .monaco-button').allInnerTexts()).map((t) => t.trim()).filter((b) => b !== 'Cancel').sort();

async function pick(page: Rig['page'], title: string, row: string | RegExp, timeout = 30_000): Promise<void> {
  const box = page.locator('.quick-input-widget', { hasText: title });
  await box.waitFor({ state: 'visible', timeout });
  await box.locator('.quick-input-list .monaco-list-row', { hasText: row }).first().click({ timeout });
}

/** Processes whose command line names `dir` (a trainer the extension started names its --run-dir). */
function processesNaming(dir: string): number[] {
  const out: number[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').includes(dir)) out.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return out;
}

test('a run naming user code says which module and file before opening; a run another process writes is not resumed', { timeout: 12 * MIN }, async () => {
  assert.ok(fs.existsSync(python), `${python} missing (run scripts/setup.sh)`);
  let shared = '';
  let busy = '';
  rig = await startRig({ name: 'trust', settings: { 'grpo.pythonPath': python }, before: (ws) => {
    shared = path.join(ws, 'runs', 'shared');
    busy = path.join(ws, 'runs', 'busy');
    const env = { ...process.env, PYTHONPATH: path.join(repo, 'trainer') };
    execFileSync(python, [path.join(repo, 'test', 'fixtures', 'tiny_hf_run.py'), busy], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    fs.cpSync(busy, shared, { recursive: true });
    const edit = (file: string, f: (v: Record<string, unknown>) => Record<string, unknown>) => fs.writeFileSync(file, JSON.stringify(f(JSON.parse(fs.readFileSync(file, 'utf8')))));
    // each run starts from its own step_000000; `shared` is the most recent run (what the commands pick)
    edit(path.join(shared, 'config.json'), (c) => ({ ...c, model: path.join(shared, 'checkpoints', 'step_000000'), reward_function: 'my_rewards:score' }));
    edit(path.join(busy, 'status.json'), (s) => ({ ...s, updated_at: Date.now() / 1000 - 600 }));
    fs.writeFileSync(path.join(ws, 'my_rewards.py'), MY_REWARDS);
  } });
  const { page, workspace } = rig;
  const marker = path.join(workspace, 'IMPORTED');
  const moduleFile = path.join(fs.realpathSync(workspace), 'my_rewards.py');

  // --- (a) Sample Group on the run naming user code: the modal first, then "Open Without It" ------------
  await runCommand(page, 'GRPO: Sample Group');
  const box = page.locator('.quick-input-widget', { hasText: 'Sample a group from run shared' });
  await box.waitFor({ state: 'visible', timeout: 30_000 });
  await until('the question in the input box', async () => {
    await box.locator('input').fill('12+30');
    return (await box.locator('input').inputValue()) === '12+30';
  }, 10_000, 300);
  await page.keyboard.press('Enter');
  const open = await dialog(page, 'names user code', 3 * MIN);
  log(`modal: ${open.text.replace(/\s+/g, ' ')}`);
  assert.match(open.text, /Run 'shared' names user code/);
  assert.ok(open.text.includes(`reward_function = my_rewards:score → imports my_rewards from ${moduleFile}`), open.text);
  assert.deepEqual(await buttons(open.box), ['Import and Open', 'Open Without It']);
  await shot(rig, '40-user-code-modal');
  assert.ok(!fs.existsSync(marker), 'nothing imported before the answer');
  await open.box.locator('.dialog-buttons .monaco-button', { hasText: 'Open Without It' }).click();

  const inspector = await webviewFrame(page, '[data-completion-index]', 4 * MIN);
  const rows = await inspector.locator('[data-completion-index]').count();
  log(`inspector rows: ${rows}`);
  assert.ok(rows >= 2, `${rows} completion rows`);
  assert.equal(await inspector.locator('#question').innerText(), '12+30');
  assert.ok(!fs.existsSync(marker), 'serve --no-user-code never imported my_rewards');
  await shot(rig, '41-opened-without-user-code');

  // --- Resume of the same run: only "Import and Resume"; dismissed, nothing starts -----------------------
  await runCommand(page, 'GRPO: Resume Training');
  await pick(page, 'Resume which run?', 'shared');
  const resume = await dialog(page, 'names user code', 2 * MIN);
  log(`resume modal: ${resume.text.replace(/\s+/g, ' ')}`);
  assert.ok(resume.text.includes(`imports my_rewards from ${moduleFile}`), resume.text);
  assert.deepEqual(await buttons(resume.box), ['Import and Resume']);
  await shot(rig, '42-resume-user-code-modal');
  await page.keyboard.press('Escape');
  await resume.box.waitFor({ state: 'hidden', timeout: 10_000 });
  await page.waitForTimeout(2000);
  assert.equal(readStatus(shared)?.ok && (readStatus(shared) as { value: { state: string } }).value.state, 'stopped', 'not resumed');
  assert.deepEqual(processesNaming(shared), [], 'no trainer started for shared');
  assert.ok(!fs.existsSync(marker), 'still never imported');

  // --- (b) A run another process is writing ------------------------------------------------------------
  jobDir = fs.mkdtempSync(path.join(os.tmpdir(), 'trust-job-'));
  const jobPy = jobPython(jobDir);
  fs.writeFileSync(path.join(jobDir, 'job.py'), JOB);
  const stderr: string[] = [];
  job = spawn(jobPy, [path.join(jobDir, 'job.py')], { cwd: jobDir, env: { ...process.env, PYTHONPATH: path.join(repo, 'trainer'), JOB_RUN_DIR: busy, OMP_NUM_THREADS: '1' }, stdio: ['ignore', 'ignore', 'pipe'] });
  job.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
  const pid = job.pid!;
  const lockFile = path.join(busy, 'writer.lock');
  await until('the test\'s trainer to hold writer.lock and write status.json', () => {
    if (job!.exitCode !== null) throw new Error(`the test's trainer exited: ${stderr.join('').slice(-2000)}`);
    const lock = fs.existsSync(lockFile) ? JSON.parse(fs.readFileSync(lockFile, 'utf8') || '{}') : {};
    const st = readStatus(busy);
    return lock.pid === pid && st?.ok && st.value.pid === pid && st.value.state === 'running';
  }, 2 * MIN, 500);
  // Paused once it holds the run, so it costs the shared machine no CPU: a stopped process is alive and keeps its lock.
  process.kill(pid, 'SIGSTOP');
  const lock = JSON.parse(fs.readFileSync(lockFile, 'utf8'));
  log(`test's trainer: pid ${pid}, writer.lock ${JSON.stringify(lock)}, cmdline ${JSON.stringify(processIdentity(pid)?.cmdline)}`);
  assert.equal(lock.host, os.hostname());
  const entry = listRuns(path.join(workspace, 'runs')).find((r) => r.dir === busy);
  assert.equal(entry?.state, 'crashed', 'status.json alone does not show the run as live (its writer is not a grpo command line)');

  // The picker can be closed under the click when the window re-renders (a refresh of the Runs view):
  // open it again until the click lands.
  await until('the Resume picker takes a click on busy', async () => {
    try {
      await runCommand(page, 'GRPO: Resume Training');
      await pick(page, 'Resume which run?', 'busy', 15_000);
      return true;
    } catch {
      await page.keyboard.press('Escape');
      return false;
    }
  }, 2 * MIN, 500);
  const toast = page.locator('.notifications-toasts .notification-toast', { hasText: 'being written by another process' }).first();
  await toast.waitFor({ state: 'visible', timeout: MIN });
  const said = (await toast.innerText()).replace(/\s+/g, ' ');
  log(`message: ${said}`);
  assert.ok(said.includes(`GRPO: busy is being written by another process (pid ${pid} on ${os.hostname()}); it was not resumed.`), said);
  // the whole message on screen: expanded (a long message is cut to one line), after the toast's fade-in
  await toast.hover();
  const expand = toast.locator('.codicon-notifications-expand');
  if (await expand.isVisible().catch(() => false)) await expand.click();
  await page.waitForTimeout(800);
  await shot(rig, '43-run-being-written');
  await page.waitForTimeout(3000);
  const st = readStatus(busy);
  assert.ok(st?.ok && st.value.pid === pid, 'status.json still names the test\'s trainer');
  assert.equal(JSON.parse(fs.readFileSync(lockFile, 'utf8')).pid, pid, 'writer.lock still names it');
  assert.deepEqual(processesNaming(busy), [], 'no second trainer was started for busy');
  assert.equal(job.exitCode, null, 'the test\'s trainer is untouched');
  assert.ok(!fs.existsSync(marker), 'my_rewards was never imported');
});
