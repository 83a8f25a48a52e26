/**
 * Runs preflight for the Training view: one at a time, cancellable, with the form's values as train's
 * settings arguments (an argument array, never a shell string), its stderr as progress, its answer checked
 * (./preflight.ts). Keeps the last verdict so that Start can warn on a predicted dead or wasteful run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as vscode from 'vscode';
import { LineSplitter } from '../shared/jsonLines';
import { checkValues, EMBEDDED_SCHEMA, type SettingValues } from '../shared/settings';
import { trainerCwd, trainerEnv, workspaceArgs, type Discovery } from '../environment/python';
import { offerPythonFix } from '../environment/envSetup';
import { IDLE_PREFLIGHT, preflightArgs, readPreflightAnswer, settingsKey, startWarning, VERDICT_LABEL, type PreflightState } from './preflight';

/** stdout kept at most (the report is one line; anything before it is not ours) */
const STDOUT_CAP = 4 * 1024 * 1024;
const STDERR_LINES = 20;

export interface PreflightHost {
  readonly log: vscode.LogOutputChannel;
  readonly trainerDir: string;
  discoverInterpreter(): Promise<Discovery>;
}

export class PreflightRunner implements vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<PreflightState>();
  readonly onDidChange = this.emitter.event;
  private current: PreflightState = IDLE_PREFLIGHT;
  private child: ChildProcess | null = null;
  private cancelled = false;
  private progressTimer: NodeJS.Timeout | null = null;

  constructor(private readonly host: PreflightHost) {}

  get state(): PreflightState {
    return this.current;
  }
  get running(): boolean {
    return this.current.status === 'running';
  }

  private set(s: PreflightState): void {
    this.current = s;
    this.emitter.fire(s);
  }

  /** Runs preflight with `values` (checked first); a second request while one runs is refused. */
  async run(values: SettingValues): Promise<PreflightState> {
    if (this.running) {
      void vscode.window.showInformationMessage('GRPO: a preflight is already running (Cancel it to start another).');
      return this.current;
    }
    const checked = checkValues(values, EMBEDDED_SCHEMA);
    const key = settingsKey(values, EMBEDDED_SCHEMA);
    if (!checked.ok) {
      this.set({ ...IDLE_PREFLIGHT, status: 'done', key, report: { verdict: 'bad_settings', exit_code: 2, problems: [], error: checked.error } });
      return this.current;
    }
    this.cancelled = false;
    this.set({ ...IDLE_PREFLIGHT, status: 'running', key, progress: 'checking the Python interpreter…', startedAt: Date.now() });
    const found = await this.host.discoverInterpreter();
    if (!found.ok) {
      this.set({ ...this.current, status: 'failed', progress: null, error: found.message });
      void offerPythonFix(found.message, this.host.log);
      return this.current;
    }
    if (this.cancelled) return this.current;
    const workspace = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    const args = workspaceArgs(preflightArgs(checked.value, EMBEDDED_SCHEMA), workspace);
    this.host.log.info(`preflight: ${found.python} ${args.join(' ')}`);
    const answer = await new Promise<{ code: number | null; stdout: string; stderr: string[]; error?: Error }>((resolve) => {
      // its own process group: Cancel ends it and anything it started
      const child = spawn(found.python, args, { cwd: trainerCwd(this.host.trainerDir), env: trainerEnv(this.host.trainerDir, process.env, workspace), shell: false, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      this.child = child;
      let stdout = '';
      const stderr: string[] = [];
      const lines = new LineSplitter();
      const onLine = (l: string) => {
        this.host.log.appendLine(`[preflight] ${l}`);
        stderr.push(l);
        if (stderr.length > STDERR_LINES) stderr.shift();
        if (l.trim()) this.progress(l.trim());
      };
      child.stdout!.setEncoding('utf8');
      child.stderr!.setEncoding('utf8');
      child.stdout!.on('data', (d: string) => {
        stdout += d;
        if (stdout.length > STDOUT_CAP) stdout = stdout.slice(stdout.length - STDOUT_CAP);
      });
      child.stderr!.on('data', (d: string) => lines.push(d.replace(/\r(?!\n)/g, '\n')).forEach(onLine)); // a progress bar's \r too
      let spawnError: Error | undefined;
      child.on('error', (e) => {
        spawnError = e;
        if (child.pid === undefined) resolve({ code: null, stdout, stderr, error: e });
      });
      child.on('close', (code) => {
        const rest = lines.end();
        if (rest !== null) onLine(rest);
        resolve({ code, stdout, stderr, error: spawnError });
      });
    });
    this.child = null;
    if (this.progressTimer) clearTimeout(this.progressTimer);
    this.progressTimer = null;
    if (this.cancelled) {
      this.set({ ...this.current, status: 'cancelled', progress: null });
      return this.current;
    }
    if (answer.error) {
      this.set({ ...this.current, status: 'failed', progress: null, error: `could not start preflight: ${answer.error.message}` });
      return this.current;
    }
    const r = readPreflightAnswer(answer.stdout, answer.code, answer.stderr);
    if (!r.ok) {
      this.host.log.error(`preflight: ${r.error}`);
      this.set({ ...this.current, status: 'failed', progress: null, error: r.error });
      return this.current;
    }
    this.host.log.info(`preflight: ${VERDICT_LABEL[r.value.verdict]}${r.value.problems.length ? `: ${r.value.problems.map((p) => `${p.severity} ${p.code}`).join(', ')}` : ''}`);
    this.set({ ...this.current, status: 'done', progress: null, report: r.value });
    return this.current;
  }

  /** Stderr lines as progress, at most ~4 a second to the page. */
  private progress(line: string): void {
    this.current = { ...this.current, progress: line.length > 240 ? `${line.slice(0, 240)}…` : line };
    this.progressTimer ??= setTimeout(() => {
      this.progressTimer = null;
      if (this.running) this.emitter.fire(this.current);
    }, 250);
  }

  cancel(): void {
    if (!this.running) return;
    this.cancelled = true;
    const c = this.child;
    if (c?.pid) {
      try {
        process.kill(-c.pid, 'SIGTERM');
      } catch {
        c.kill('SIGTERM');
      }
      const pid = c.pid;
      setTimeout(() => {
        if (c.exitCode === null && c.signalCode === null) {
          try {
            process.kill(-pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
      }, 3000).unref();
    } else this.set({ ...this.current, status: 'cancelled', progress: null });
  }

  /** Before Start: when the last preflight for exactly these values predicted a dead or wasteful run, a modal
   * warning asks; true to go on. */
  async confirmStart(values: SettingValues): Promise<boolean> {
    const w = startWarning(this.current, settingsKey(values, EMBEDDED_SCHEMA));
    if (!w) return true;
    const go = await vscode.window.showWarningMessage(w.title, { modal: true, detail: w.detail }, 'Start Anyway');
    return go === 'Start Anyway';
  }

  dispose(): void {
    this.cancel();
    if (this.progressTimer) clearTimeout(this.progressTimer);
    this.emitter.dispose();
  }
}
