/**
 * The training controller: owns the one live run of this window (spawned or re-attached), the
 * interpreter, the training view's remembered form values, and the "GRPO Trainer" log. Views listen to its events.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { ControlType, GroupRecord, MetricsRow } from '../shared/records';
import { offerPythonFix } from '../environment/envSetup';
import { checkInterpreter, findInterpreter, SOURCE_LABEL, type Discovery } from '../environment/python';
import { isResumable, listRuns, newRunName, readStatus, effectiveState, trainerAlive } from '../rundir/runDir';
import { RunSession, type SessionChange } from './session';
import { UserCodeGate } from '../rundir/userCodeGate';
import { busyMessage, runWriter } from '../rundir/writerLock';
import { checkValues, defaultValues, diffFromDefaults, EMBEDDED_SCHEMA, launchArgs, sanitizeValues, trainArgs, type Launcher, type SettingValues } from '../shared/settings';
import type { LiveSummary } from './panelProtocol';
import { PreflightRunner } from './preflightRunner';

const VALUES_KEY = 'grpo.settingsValues';
const LIVE_RUN_KEY = 'grpo.liveRun';

export class TrainingController implements vscode.Disposable {
  private session: RunSession | null = null;
  private readonly summaryEmitter = new vscode.EventEmitter<LiveSummary | null>();
  private readonly metricsEmitter = new vscode.EventEmitter<{ runDir: string; rows: MetricsRow[]; replaced: boolean }>();
  private readonly runsChangedEmitter = new vscode.EventEmitter<void>();
  private readonly valuesEmitter = new vscode.EventEmitter<SettingValues>();
  private readonly groupEmitter = new vscode.EventEmitter<{ runDir: string; group: GroupRecord }>();
  /** Summary snapshots, at most every 250 ms (a fast trainer must not flood the views). */
  readonly onDidChangeSummary = this.summaryEmitter.event;
  readonly onDidAppendMetrics = this.metricsEmitter.event;
  readonly onDidChangeRuns = this.runsChangedEmitter.event;
  readonly onDidChangeValues = this.valuesEmitter.event;
  /** Each group the live run logs, as it logs it (its `samples` message; re-attached, samples.jsonl's new lines). */
  readonly onDidLogGroup = this.groupEmitter.event;
  private summaryTimer: NodeJS.Timeout | null = null;
  private readonly checked = new Map<string, number>(); // interpreter → mtime when it passed the check
  private starting = false;
  /** Asks before a run's user code is imported (serve, resume); its answers last the window's session. */
  readonly userCode: UserCodeGate;
  /** The Training view's preflight; its last verdict makes Start ask before a predicted dead or wasteful run. */
  readonly preflight: PreflightRunner;

  constructor(
    private readonly ctx: vscode.ExtensionContext,
    readonly log: vscode.LogOutputChannel,
  ) {
    this.userCode = new UserCodeGate(log, () => this.trainerDir);
    this.preflight = new PreflightRunner(this);
  }

  get trainerDir(): string {
    return path.join(this.ctx.extensionPath, 'trainer');
  }
  get live(): RunSession | null {
    return this.session && !this.session.ended ? this.session : null;
  }
  get current(): RunSession | null {
    return this.session;
  }

  // --- The training view's last values (remembered per workspace, for the form) ----------------------
  /** What the form showed last (the defaults at first). Stored values may predate this version's settings
   * table: those that no longer fit it are dropped (and forgotten), with a warning. */
  rememberedValues(): SettingValues {
    const { values, errors } = sanitizeValues(this.ctx.workspaceState.get<SettingValues>(VALUES_KEY, {}));
    if (errors.length) {
      errors.forEach((e) => this.log.warn(`remembered settings: ${e}; dropped`));
      void this.remember(values);
    }
    return values;
  }
  /** Remembers the form's values (as it shows them: the form owns them, nothing is sent back). */
  async remember(values: SettingValues): Promise<void> {
    await this.ctx.workspaceState.update(VALUES_KEY, diffFromDefaults(values));
  }
  /** Forgets the remembered values; the form is told to show the defaults. */
  async resetValues(): Promise<void> {
    await this.ctx.workspaceState.update(VALUES_KEY, undefined);
    this.valuesEmitter.fire(defaultValues());
  }

  // --- Folders and interpreter ---------------------------------------------------------------------
  runsFolder(): string | undefined {
    const ws = vscode.workspace.workspaceFolders?.[0];
    const setting = vscode.workspace.getConfiguration('grpo', ws?.uri).get<string>('runsFolder', 'runs') || 'runs';
    if (path.isAbsolute(setting)) return setting;
    return ws ? path.join(ws.uri.fsPath, setting) : undefined;
  }

  /** The interpreter to run; every command that starts Python comes through here, so here is where an
   * untrusted workspace (whose settings choose the interpreter) is refused. */
  async discoverInterpreter(): Promise<Discovery> {
    if (!vscode.workspace.isTrusted) {
      return { ok: false, tried: [], message: 'this workspace is not trusted, and starting Python runs code chosen by its settings (the interpreter, reward functions). Trust the workspace to train or inspect (Manage Workspace Trust).' };
    }
    const ws = vscode.workspace.workspaceFolders?.map((f) => f.uri.fsPath) ?? [];
    const setting = vscode.workspace.getConfiguration('grpo').get<string>('pythonPath', '');
    const cached = async (python: string, trainerDir: string) => {
      const mtime = fs.statSync(python, { throwIfNoEntry: false })?.mtimeMs ?? -1;
      if (this.checked.get(python) === mtime) return { ok: true as const, versions: 'checked earlier' };
      const r = await checkInterpreter(python, trainerDir);
      if (r.ok) this.checked.set(python, mtime);
      return r;
    };
    return findInterpreter({ setting, pythonExtension: () => pythonExtensionInterpreter(), workspaceFolders: ws, remoteName: vscode.env.remoteName }, this.trainerDir, cached);
  }

  // --- Starting ------------------------------------------------------------------------------------
  private guard(): boolean {
    if (!vscode.workspace.isTrusted) {
      void vscode.window.showWarningMessage('GRPO: training is disabled in an untrusted workspace: it runs Python code with an interpreter chosen by the workspace settings. Trust the workspace to train.', 'Manage Workspace Trust')
        .then((a) => a && vscode.commands.executeCommand('workbench.trust.manage'));
      return false;
    }
    if (this.live || this.starting) {
      void vscode.window.showWarningMessage(`GRPO: run ${this.live?.name ?? ''} is still training. Stop it before starting another.`, 'Stop Training')
        .then((a) => a && this.control('stop'));
      return false;
    }
    return true;
  }

  /** Starts a new run with `values`: the training view's, as it posts them with Start, or (from the command
   * palette) the values it showed last. They are checked here, once, against the settings schema. */
  async start(values: SettingValues = this.rememberedValues()): Promise<RunSession | undefined> {
    if (!this.guard()) return undefined;
    const runs = this.runsFolder();
    if (!runs) {
      void vscode.window.showErrorMessage('GRPO: open a folder first; runs are written to its runs folder (setting grpo.runsFolder).');
      return undefined;
    }
    const checked = checkValues(values, EMBEDDED_SCHEMA);
    if (!checked.ok) {
      void vscode.window.showErrorMessage(`GRPO: cannot start with these settings: ${checked.error}`);
      return undefined;
    }
    if (!(await this.preflight.confirmStart(values))) return undefined;
    const dir = path.join(runs, newRunName(String(checked.value.task ?? 'run')));
    return this.launch(dir, trainArgs({ runDir: dir, values: checked.value, schema: EMBEDDED_SCHEMA }), 'Starting training', { verb: 'started' });
  }

  /** Continues run `dir` from its latest checkpoint: not while another process writes it (writer.lock),
   * and only once the user code it names (if any) is agreed to. */
  async resume(dir: string): Promise<RunSession | undefined> {
    if (!this.guard() || this.refuseBusy(dir, 'resumed')) return undefined;
    return this.launch(dir, trainArgs({ runDir: dir, resume: true }), `Resuming ${path.basename(dir)}`, {
      verb: 'resumed',
      beforeSpawn: (python) => this.userCode.forResume(python, dir),
    });
  }

  /** True (and says so) when another live process holds run `dir`'s writer lock: a second writer is never started. */
  private refuseBusy(dir: string, verb: string): boolean {
    const w = runWriter(dir);
    if (w.state === 'live') {
      const msg = busyMessage(path.basename(dir), w.holder, verb);
      this.log.warn(msg);
      void vscode.window.showWarningMessage(msg);
      return true;
    }
    if (w.state === 'unreadable') this.log.warn(`run ${path.basename(dir)}: ${w.why}; the trainer checks its lock itself`);
    return false;
  }

  private async launch(dir: string, trainerArgs: string[], title: string, o: { verb: string; beforeSpawn?: (python: string) => Promise<boolean> }): Promise<RunSession | undefined> {
    const cfg = vscode.workspace.getConfiguration('grpo');
    let args: string[];
    try {
      args = launchArgs(trainerArgs, cfg.get<Launcher>('launcher', 'python'), cfg.get<number>('processes', 1));
    } catch (e) {
      void vscode.window.showErrorMessage(`GRPO: ${(e as Error).message}`);
      return undefined;
    }
    this.starting = true;
    try {
      const found = await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: 'GRPO: checking the Python interpreter…' }, () => this.discoverInterpreter());
      if (!found.ok) {
        void offerPythonFix(found.message, this.log);
        return undefined;
      }
      if (o.beforeSpawn) {
        let go: boolean;
        try {
          go = await o.beforeSpawn(found.python);
        } catch (e) {
          this.log.error(`${title}: ${(e as Error).message}`);
          void vscode.window.showErrorMessage(`GRPO: ${(e as Error).message}`, 'Show Log').then((a) => a && this.log.show());
          return undefined;
        }
        if (!go) return undefined;
      }
      // again, just before starting: a question may have been open a while
      if (this.refuseBusy(dir, o.verb)) return undefined;
      fs.mkdirSync(path.dirname(dir), { recursive: true });
      const workspace = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
      this.log.info(`${title}: ${found.python} (${SOURCE_LABEL[found.source]}) ${args.join(' ')}`);
      this.session?.dispose();
      this.session = RunSession.spawn(dir, found.python, args, { workspace, trainerDir: this.trainerDir }, { onChange: (c) => this.onChange(c) });
      await this.ctx.workspaceState.update(LIVE_RUN_KEY, dir);
      this.emitSummary(true);
      this.runsChangedEmitter.fire();
      return this.session;
    } finally {
      this.starting = false;
    }
  }

  /** After a window reload or restart: finds a trainer that is still alive and tails its run directory. */
  reattach(): RunSession | undefined {
    if (this.session) return undefined;
    const candidates: string[] = [];
    const remembered = this.ctx.workspaceState.get<string>(LIVE_RUN_KEY);
    if (remembered) candidates.push(remembered);
    const runs = this.runsFolder();
    if (runs) for (const r of listRuns(runs)) if (!candidates.includes(r.dir)) candidates.push(r.dir);
    for (const dir of candidates) {
      const s = readStatus(dir);
      if (!s?.ok) continue;
      const st = s.value;
      if ((st.state === 'running' || st.state === 'paused') && trainerAlive(st)) {
        this.log.info(`re-attached to run ${path.basename(dir)} (pid ${st.pid}) through its run directory`);
        this.session = RunSession.attach(dir, { onChange: (c) => this.onChange(c) });
        this.emitSummary(true);
        return this.session;
      }
      if (dir === remembered && effectiveState(st) === 'crashed') this.offerCrashed(dir, st.error ?? 'the trainer process is gone without finishing');
    }
    return undefined;
  }

  control(action: ControlType): void {
    const s = this.live;
    if (!s) {
      void vscode.window.showInformationMessage('GRPO: no training run is live in this window.');
      return;
    }
    const how = s.control(action);
    if (how === 'unavailable') {
      void vscode.window.showWarningMessage(
        s.mode === 'attached' ? `GRPO: ${action} needs the window that started the run (this one re-attached through the run directory); Stop works.` : `GRPO: the trainer is not accepting requests.`,
      );
    } else this.log.info(`${action} requested (${how === 'signal' ? 'SIGINT to the re-attached trainer' : 'stdin'})`);
  }

  // --- Events --------------------------------------------------------------------------------------
  private onChange(c: SessionChange): void {
    const s = this.session;
    if (!s) return;
    switch (c.kind) {
      case 'stderr':
        this.log.appendLine(c.line);
        return;
      case 'problem':
        this.log.warn(`${c.source} line ${c.problem.line}: ${c.problem.error}: ${c.problem.text}`);
        return;
      case 'metrics':
        this.metricsEmitter.fire({ runDir: s.dir, rows: c.rows, replaced: c.replaced });
        break;
      case 'group':
        this.groupEmitter.fire({ runDir: s.dir, group: c.group });
        return;
      case 'event':
        if (c.event.kind === 'warning') this.log.warn(`trainer warning: ${String(c.event.message ?? '')}`);
        if (c.event.kind === 'checkpoint') this.runsChangedEmitter.fire();
        break;
      case 'status':
        this.runsChangedEmitter.fire();
        break;
      case 'exit':
        void this.ctx.workspaceState.update(LIVE_RUN_KEY, undefined);
        this.runsChangedEmitter.fire();
        this.emitSummary(true);
        this.announceExit(s, c.error);
        return;
    }
    this.emitSummary(false);
  }

  private announceExit(s: RunSession, error: string | null): void {
    const st = s.status;
    if (error || st?.state === 'failed') {
      this.log.error(`run ${s.name} failed: ${error ?? st?.error}`);
      this.offerCrashed(s.dir, error ?? st?.error ?? 'unknown error');
    } else if (st?.state === 'stopped') {
      void vscode.window.showInformationMessage(`GRPO: run ${s.name} stopped at step ${st.step}${st.last_checkpoint ? ` (checkpoint ${st.last_checkpoint})` : ''}.`);
    } else if (st?.state === 'finished') {
      void vscode.window.showInformationMessage(`GRPO: run ${s.name} finished (${st.step} steps).`, 'Open Dashboard').then((a) => a && vscode.commands.executeCommand('grpo.openDashboard', s.dir));
    }
  }

  private offerCrashed(dir: string, error: string): void {
    const st = readStatus(dir);
    const status = st?.ok ? st.value : null;
    const actions = isResumable(effectiveState(status), status) ? ['Resume', 'Show Log'] : ['Show Log'];
    void vscode.window.showErrorMessage(`GRPO: run ${path.basename(dir)} failed: ${error}`, ...actions).then((a) => {
      if (a === 'Resume') void this.resume(dir);
      else if (a === 'Show Log') this.log.show();
    });
  }

  private emitSummary(now: boolean): void {
    const fire = () => {
      this.summaryTimer = null;
      this.summaryEmitter.fire(this.session ? this.session.summary() : null);
    };
    if (now) {
      if (this.summaryTimer) clearTimeout(this.summaryTimer);
      fire();
    } else if (!this.summaryTimer) this.summaryTimer = setTimeout(fire, 250);
  }

  summary(): LiveSummary | null {
    return this.session ? this.session.summary() : null;
  }

  dispose(): void {
    if (this.summaryTimer) clearTimeout(this.summaryTimer);
    this.preflight.dispose();
    // Leave a live trainer running: the next window re-attaches to it through the run directory.
    this.session?.dispose();
    this.summaryEmitter.dispose();
    this.metricsEmitter.dispose();
    this.runsChangedEmitter.dispose();
    this.valuesEmitter.dispose();
    this.groupEmitter.dispose();
  }
}

/** The Python extension's active interpreter, if that extension is installed (its API is optional). */
async function pythonExtensionInterpreter(): Promise<string | undefined> {
  const ext = vscode.extensions.getExtension('ms-python.python');
  if (!ext) return undefined;
  const api = (ext.isActive ? ext.exports : await ext.activate()) as {
    environments?: { getActiveEnvironmentPath(r?: vscode.Uri): { path: string }; resolveEnvironment(p: { path: string }): Promise<{ executable?: { uri?: vscode.Uri } } | undefined> };
    settings?: { getExecutionDetails?(r?: vscode.Uri): { execCommand?: string[] } };
  };
  const resource = vscode.workspace.workspaceFolders?.[0]?.uri;
  if (api?.environments) {
    const active = api.environments.getActiveEnvironmentPath(resource);
    const env = await api.environments.resolveEnvironment(active);
    return env?.executable?.uri?.fsPath ?? active.path;
  }
  return api?.settings?.getExecutionDetails?.(resource)?.execCommand?.[0];
}
