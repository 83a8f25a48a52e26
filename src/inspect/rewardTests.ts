/**
 * Reward tests from the inspector (issue 26): "Save as reward test" on a completion of the group inspector asks
 * what reward it should get and appends it as a `check-rewards` case to the workspace's reward tests file
 * (`grpo.rewardTestsFile`, default reward-tests.jsonl); "GRPO: Check Reward Tests" runs
 * `python -m grpo check-rewards FILE --run RUN --json` (an argument array, never a shell string) against the
 * chosen run's reward functions and lists the cases that now disagree. How a suspected reward hack becomes a
 * regression test. The parts without `vscode` are ./rewardTestFile.ts.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { offerPythonFix } from '../environment/envSetup';
import { trainerCwd, trainerEnv } from '../environment/python';
import { describeModule, queryUserCode, reportSignature } from '../rundir/userCode';
import type { TrainingController } from '../training/controller';
import type { ShownGroup } from './panels';
import { appendCase, describeOutcome, parseExpected, readCheckReport, resolveTestsFile, rewardTestCase, RewardTestFileError, type CheckReport } from './rewardTestFile';

export const TESTS_FILE_SETTING = 'rewardTestsFile';
const STDOUT_CAP = 16 * 1024 * 1024;
const IMPORT_AND_CHECK = 'Import and Check';

function workspaceFolder(): string | undefined {
  return vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
}
const testsSetting = (): string => vscode.workspace.getConfiguration('grpo').get<string>(TESTS_FILE_SETTING) ?? 'reward-tests.jsonl';

export class RewardTests {
  /** runs whose user code the user agreed to import for a check, in this window's session (by signature) */
  private readonly agreed = new Map<string, string>();
  private running = false;

  constructor(private readonly training: TrainingController, private readonly runDir: () => string | undefined) {}

  /** "Save as reward test" on completion `index` of the shown group. */
  async save(g: ShownGroup, index: number): Promise<void> {
    const ws = workspaceFolder();
    if (!ws) return void vscode.window.showErrorMessage('GRPO: open a folder first: reward tests are kept in a file in the workspace.');
    const group = g.group;
    if (index >= group.completions.length) return;
    const got = group.rewards[index];
    const parts = Object.entries(group.reward_functions ?? {}).map(([k, v]) => `${k} ${v[index] ?? 'none'}`);
    const typed = await vscode.window.showInputBox({
      title: `Save completion ${index} as a reward test`,
      prompt: `What reward should this completion get? It got ${got}${parts.length ? ` (${parts.join(', ')})` : ''}. check-rewards compares the weighted sum of the reward functions with it.`,
      value: String(got),
      ignoreFocusOut: true,
      validateInput: (t) => {
        const r = parseExpected(t);
        return r.ok ? null : r.error;
      },
    });
    if (typed === undefined) return;
    const expected = parseExpected(typed);
    if (!expected.ok) return void vscode.window.showErrorMessage(`GRPO: ${expected.error}`);
    try {
      const c = rewardTestCase(group, index, expected.value, g.title);
      const { file, line } = appendCase(ws, testsSetting(), c);
      this.training.log.info(`reward test saved: ${file}:${line} (expected ${expected.value}, got ${got})`);
      const rel = path.relative(ws, file);
      const a = await vscode.window.showInformationMessage(`GRPO: saved as reward test ${rel}:${line} (expected ${expected.value}).`, 'Open File', 'Check Reward Tests');
      if (a === 'Open File') await this.openAt(file, line);
      else if (a === 'Check Reward Tests') await this.check(g.origin.runDir);
    } catch (e) {
      const msg = e instanceof RewardTestFileError || e instanceof RangeError ? e.message : `could not save the reward test: ${(e as Error).message}`;
      this.training.log.warn(`reward test: ${msg}`);
      void vscode.window.showErrorMessage(`GRPO: ${msg}`);
    }
  }

  /** "GRPO: Check Reward Tests": the tests file against `runDir`'s (else the chosen run's) reward functions. */
  async check(runDir?: string): Promise<CheckReport | undefined> {
    const ws = workspaceFolder();
    if (!ws) return void vscode.window.showErrorMessage('GRPO: open a folder first: reward tests are kept in a file in the workspace.');
    if (this.running) return void vscode.window.showInformationMessage('GRPO: reward tests are being checked already.');
    let file: string;
    try {
      file = resolveTestsFile(ws, testsSetting());
    } catch (e) {
      return void vscode.window.showErrorMessage(`GRPO: ${(e as Error).message}`);
    }
    const rel = path.relative(ws, file);
    if (!(await exists(file))) return void vscode.window.showErrorMessage(`GRPO: no reward tests yet (${rel} does not exist). Save one from the group inspector: "Save as reward test" on a completion.`);
    const run = runDir ?? this.runDir();
    if (!run) return void vscode.window.showErrorMessage('GRPO: no run to take the reward functions from: train one first ("GRPO: Start Training").');
    const found = await this.training.discoverInterpreter();
    if (!found.ok) return void offerPythonFix(found.message, this.training.log);
    if (!(await this.mayImport(found.python, run, ws))) return;
    this.running = true;
    try {
      const args = ['-m', 'grpo', 'check-rewards', file, '--run', run, '--json'];
      this.training.log.info(`reward tests: ${found.python} ${args.join(' ')}`);
      const r = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `GRPO: checking ${rel} against run ${path.basename(run)}'s reward functions…` },
        () => runTrainer(found.python, args, this.training.trainerDir, ws, (l) => this.training.log.appendLine(`[check-rewards] ${l}`)));
      if (r.error) return void vscode.window.showErrorMessage(`GRPO: could not run check-rewards: ${r.error}`);
      if (r.code !== 0 && r.code !== 1) {
        const why = r.stderr.filter((l) => l.trim()).pop() ?? `exit code ${r.code}`;
        return void vscode.window.showErrorMessage(`GRPO: check-rewards could not check ${rel}: ${why}`, 'Show Log').then((a) => a && this.training.log.show());
      }
      const report = readCheckReport(r.stdout);
      if (!report.ok) return void vscode.window.showErrorMessage(`GRPO: ${report.error} (exit code ${r.code}).`);
      await this.show(report.value, file, rel, path.basename(run));
      return report.value;
    } finally {
      this.running = false;
    }
  }

  private async show(rep: CheckReport, file: string, rel: string, runName: string): Promise<void> {
    const skipped = rep.skipped ? `; ${rep.skipped} line(s) skipped (${Object.entries(rep.bad).map(([why, n]) => `${n} ${why}`).join(', ')})` : '';
    const funcs = rep.reward_funcs?.length ? ` (${rep.reward_funcs.join(', ')})` : '';
    this.training.log.info(`reward tests ${rel} against run ${runName}${funcs}: ${rep.agree} of ${rep.cases} agree, ${rep.disagree} disagree${skipped}`);
    for (const r of rep.results.filter((x) => !x.ok)) {
      const d = describeOutcome(r);
      this.training.log.info(`  ${d.label} — ${d.detail}`);
    }
    if (!rep.disagree) {
      void vscode.window.showInformationMessage(`GRPO: all ${rep.cases} reward tests in ${rel} agree with run ${runName}'s reward functions${funcs}${skipped}.`);
      return;
    }
    const items = rep.results.filter((x) => !x.ok).map((r) => ({ ...describeOutcome(r), line: r.line }));
    const pick = await vscode.window.showQuickPick(items, {
      title: `${rep.disagree} of ${rep.cases} reward tests disagree with run ${runName}'s reward functions${funcs}${skipped}`,
      placeHolder: 'Each case: the reward it should get, the reward it gets now, and what each function gives (and gave when saved). Pick one to open it.',
      matchOnDetail: true,
      ignoreFocusOut: true,
    });
    if (pick) await this.openAt(file, pick.line);
  }

  /** Before the check imports the run's reward functions: a modal when it names user code (once per run and
   * code in this window's session); refused code is an error. */
  private async mayImport(python: string, runDir: string, ws: string): Promise<boolean> {
    let report;
    try {
      report = await queryUserCode(python, runDir, { trainerDir: this.training.trainerDir, workspace: ws });
    } catch (e) {
      void vscode.window.showErrorMessage(`GRPO: ${(e as Error).message}`);
      return false;
    }
    if (!report.modules.length) return true;
    const refused = report.modules.filter((m) => m.refused !== null);
    if (refused.length) {
      void vscode.window.showErrorMessage(`GRPO: run ${path.basename(runDir)} names user code the trainer refuses to import (${refused.map(describeModule).join('; ')}); its reward tests were not checked.`);
      return false;
    }
    const sig = reportSignature(report);
    if (this.agreed.get(path.resolve(runDir)) === sig) return true;
    const a = await vscode.window.showWarningMessage(`Run '${path.basename(runDir)}' names user code`, {
      modal: true,
      detail: `${report.modules.map(describeModule).join('\n')}\n\nChecking the reward tests imports and runs this code (the reward functions under test).`,
    }, IMPORT_AND_CHECK);
    if (a !== IMPORT_AND_CHECK) return false;
    this.agreed.set(path.resolve(runDir), sig);
    return true;
  }

  private async openAt(file: string, line: number): Promise<void> {
    const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(file));
    const pos = new vscode.Position(Math.max(0, line - 1), 0);
    await vscode.window.showTextDocument(doc, { selection: new vscode.Range(pos, pos) });
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await vscode.workspace.fs.stat(vscode.Uri.file(file));
    return true;
  } catch {
    return false;
  }
}

/** A trainer command with its own process group: stdout kept (capped), stderr lines to `onLine`. */
function runTrainer(python: string, args: string[], trainerDir: string, ws: string, onLine: (l: string) => void): Promise<{ code: number | null; stdout: string; stderr: string[]; error?: string }> {
  return new Promise((resolve) => {
    const child = spawn(python, args, { cwd: trainerCwd(trainerDir), env: trainerEnv(trainerDir, process.env, ws), shell: false, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let rest = '';
    const stderr: string[] = [];
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      stdout += d;
      if (stdout.length > STDOUT_CAP) stdout = stdout.slice(stdout.length - STDOUT_CAP);
    });
    child.stderr.on('data', (d: string) => {
      const lines = (rest + d).split('\n');
      rest = lines.pop() ?? '';
      for (const l of lines) {
        onLine(l);
        stderr.push(l);
        if (stderr.length > 40) stderr.shift();
      }
    });
    child.on('error', (e) => resolve({ code: null, stdout, stderr, error: e.message }));
    child.on('close', (code) => {
      if (rest) (onLine(rest), stderr.push(rest));
      resolve({ code, stdout, stderr });
    });
  });
}
