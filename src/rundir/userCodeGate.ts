/**
 * Asking before a run's user code is imported: before a `serve` process opens a run or checkpoint, and
 * before `train --resume`, the window runs `python -m grpo user-code` (./userCode.ts) and, when the run names
 * code, says which module it will import and from where in a modal, once per run directory for the window's
 * session.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { describeModule, IMPORT_AND_OPEN, IMPORT_AND_RESUME, openQuestion, queryUserCode, resumeQuestion, configKey, UserCodeAnswers, type UserCodeChoice, type UserCodeReport } from './userCode';

export class UserCodeGate {
  private readonly answers = new UserCodeAnswers();
  /** one question at a time per run directory (two checkpoints of one run opened together ask once) */
  private readonly asking = new Map<string, Promise<UserCodeChoice>>();

  constructor(private readonly log: vscode.LogOutputChannel, private readonly trainerDir: () => string) {}

  /** The code run `runDir` names, asked of the trainer about `target` (the run or one of its checkpoints). */
  private async report(python: string, runDir: string, target: string): Promise<UserCodeReport> {
    const cached = this.answers.cachedReport(runDir);
    if (cached) return cached;
    const key = configKey(runDir); // before the query: a config.json written meanwhile is read again next time
    const report = await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: `GRPO: reading which code run ${path.basename(runDir)} names…` },
      () => queryUserCode(python, target, { trainerDir: this.trainerDir(), workspace: vscode.workspace.workspaceFolders?.[0]?.uri.fsPath }));
    this.answers.cacheReport(runDir, report, key);
    this.log.info(`user code named by run ${path.basename(runDir)}: ${report.modules.length ? report.modules.map(describeModule).join('; ') : 'none'}`);
    return report;
  }

  /**
   * Before `serve` opens `target` of run `runDir`: 'import' (nothing to ask, or "Import and Open") or
   * 'without' ("Open Without It": serve --no-user-code). vscode.CancellationError when the question is
   * dismissed; UserCodeQueryError when the trainer cannot say.
   */
  forOpen(python: string, runDir: string, target: string): Promise<UserCodeChoice> {
    const key = path.resolve(runDir);
    const pending = this.asking.get(key);
    if (pending) return pending;
    const p = this.askOpen(python, runDir, target).finally(() => this.asking.delete(key));
    this.asking.set(key, p);
    return p;
  }

  private async askOpen(python: string, runDir: string, target: string): Promise<UserCodeChoice> {
    const report = await this.report(python, runDir, target);
    const q = openQuestion(path.basename(runDir), report);
    if (!q) return 'import';
    const known = this.answers.choice(runDir, report);
    if (known) return known;
    const a = await vscode.window.showWarningMessage(q.message, { modal: true, detail: q.detail }, ...q.actions);
    if (!a) throw new vscode.CancellationError();
    const choice: UserCodeChoice = a === IMPORT_AND_OPEN ? 'import' : 'without';
    this.answers.remember(runDir, report, choice);
    this.log.info(`run ${path.basename(runDir)}: ${choice === 'import' ? 'importing its user code' : 'opened without its user code (--no-user-code)'} for this window's session`);
    return choice;
  }

  /**
   * Before `train --resume` of `runDir`: true to go on (no user code, an earlier "Import and …" in this
   * session, or "Import and Resume" now). A module the trainer refuses is an error message and false.
   * UserCodeQueryError when the trainer cannot say.
   */
  async forResume(python: string, runDir: string): Promise<boolean> {
    const report = await this.report(python, runDir, runDir);
    const q = resumeQuestion(path.basename(runDir), report);
    if (!q) return true;
    if (q.kind === 'refused') {
      this.log.warn(q.error);
      void vscode.window.showErrorMessage(q.error);
      return false;
    }
    if (this.answers.choice(runDir, report) === 'import') return true;
    const a = await vscode.window.showWarningMessage(q.question.message, { modal: true, detail: q.question.detail }, ...q.question.actions);
    if (a !== IMPORT_AND_RESUME) return false;
    this.answers.remember(runDir, report, 'import');
    return true;
  }
}
