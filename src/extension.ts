/** Composition root: creates the controller, views, status bar and commands, and wires them together. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { selectPython, SETUP_COMMAND, setupEnvironmentCommand } from './envSetup';
import { listCandidates, checkInterpreter, SOURCE_LABEL } from './python';
import { isResumable, listRuns } from './runDir';
import { InspectCommands } from './inspect/commands';
import { COMPLETION_SCHEME, CompletionDocuments, TokenShading } from './inspect/editor';
import { TrainingController } from './training';
import { DashboardPanel } from './views/dashboard';
import { runDirOf, RunsTreeProvider } from './views/runsTree';
import { TrainingStatusBar } from './views/statusBar';
import { TrainingViewProvider } from './views/trainingView';

export function activate(ctx: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('GRPO Trainer', { log: true });
  const training = new TrainingController(ctx, log);
  const statusBar = new TrainingStatusBar();
  const trainingView = new TrainingViewProvider(ctx.extensionUri, training);
  const runsTree = new RunsTreeProvider(training);
  const showDashboard = (dirs: string[]) => DashboardPanel.show(ctx.extensionUri, training, dirs);
  const runsView = vscode.window.createTreeView('grpo.runsView', { treeDataProvider: runsTree });
  const shading = new TokenShading();
  const inspect = new InspectCommands(ctx.extensionUri, training, shading, () => runsView.selection);

  ctx.subscriptions.push(
    log,
    training,
    statusBar,
    trainingView,
    runsTree,
    training.onDidChangeSummary((s) => statusBar.update(s)),
    vscode.window.registerWebviewViewProvider(TrainingViewProvider.viewId, trainingView),
    runsView,
    shading,
    inspect,
    vscode.workspace.registerTextDocumentContentProvider(COMPLETION_SCHEME, new CompletionDocuments()),
    vscode.languages.registerHoverProvider('*', shading),
    vscode.commands.registerCommand('grpo.sampleGroup', (n?: unknown, question?: unknown) => inspect.sampleGroup(n, typeof question === 'string' ? question : undefined)),
    vscode.commands.registerCommand('grpo.inspectTokens', (n?: unknown) => inspect.inspectTokens(n)),
    vscode.commands.registerCommand('grpo.compareToReference', (n?: unknown, question?: unknown) => inspect.compare(n, typeof question === 'string' ? question : undefined)),
    vscode.commands.registerCommand('grpo.scoreDocument', (n?: unknown) => inspect.scoreDocument(n)),
    vscode.commands.registerCommand('grpo.toggleShading', () => inspect.toggleShading()),
    vscode.commands.registerCommand('grpo.run.openSamples', (n: unknown) => inspect.openLoggedGroup(n)),
    vscode.window.registerWebviewPanelSerializer(DashboardPanel.viewType, {
      async deserializeWebviewPanel(panel, state) {
        DashboardPanel.revive(panel, ctx.extensionUri, training, state);
      },
    }),

    vscode.commands.registerCommand('grpo.startTraining', () => training.start()),
    vscode.commands.registerCommand('grpo.stopTraining', () => training.control('stop')),
    vscode.commands.registerCommand('grpo.pauseTraining', () => training.control('pause')),
    vscode.commands.registerCommand('grpo.resumeTraining', async () => {
      if (training.live) return training.control('resume');
      const dir = await pickRun(training, 'Resume which run?', true);
      if (dir) await training.resume(dir);
    }),
    vscode.commands.registerCommand('grpo.openDashboard', (dir?: unknown) => {
      training.reattach(); // a run another process trains (a TRL script with grpo.integrations.trl.attach) is followed live
      const target = typeof dir === 'string' ? dir : training.current?.dir ?? latestRun(training);
      showDashboard(target ? [target] : []);
    }),
    vscode.commands.registerCommand('grpo.openRun', async () => {
      const dir = await pickRun(training, 'Open which run in the dashboard?', false);
      if (dir) showDashboard([dir]);
    }),
    vscode.commands.registerCommand('grpo.selectInterpreter', () => selectInterpreter(training)),
    vscode.commands.registerCommand(SETUP_COMMAND, () => setupEnvironmentCommand(ctx, training.trainerDir, log)),
    vscode.commands.registerCommand('grpo.refreshRuns', () => runsTree.refresh()),
    vscode.commands.registerCommand('grpo.run.openDashboard', (n: unknown) => {
      const dir = runDirOf(n);
      training.reattach();
      if (dir) showDashboard([dir]);
    }),
    vscode.commands.registerCommand('grpo.run.resume', async (n: unknown) => {
      const dir = runDirOf(n);
      if (dir) await training.resume(dir);
    }),
    vscode.commands.registerCommand('grpo.run.reveal', async (n: unknown) => {
      const dir = runDirOf(n);
      if (!dir) return;
      const uri = vscode.Uri.file(dir);
      const inWorkspace = vscode.workspace.getWorkspaceFolder(uri) !== undefined;
      await vscode.commands.executeCommand(inWorkspace ? 'revealInExplorer' : 'revealFileInOS', uri);
    }),
    vscode.commands.registerCommand('grpo.run.delete', async (n: unknown) => {
      const dir = runDirOf(n);
      if (!dir) return;
      if (training.live?.dir === dir) {
        void vscode.window.showWarningMessage('GRPO: stop the run before deleting it.');
        return;
      }
      const ok = await vscode.window.showWarningMessage(`Delete run "${path.basename(dir)}" and all its checkpoints?`, { modal: true, detail: dir }, 'Delete');
      if (ok !== 'Delete') return;
      await vscode.workspace.fs.delete(vscode.Uri.file(dir), { recursive: true, useTrash: false });
      runsTree.refresh();
    }),
  );

  // A run that outlived the previous window (reload, restart) is picked up again.
  if (training.reattach()) statusBar.update(training.summary());
}

export function deactivate(): void {
  // Disposables (ctx.subscriptions) detach from a live trainer without stopping it.
}

function latestRun(training: TrainingController): string | undefined {
  const folder = training.runsFolder();
  return folder ? listRuns(folder)[0]?.dir : undefined;
}

async function pickRun(training: TrainingController, title: string, resumableOnly: boolean): Promise<string | undefined> {
  const folder = training.runsFolder();
  const runs = (folder ? listRuns(folder) : []).filter((r) => !resumableOnly || (isResumable(r.state, r.status) && training.live?.dir !== r.dir));
  const browse = { label: '$(folder-opened) Browse for a run directory…', dir: '' };
  const items = [
    ...runs.map((r) => ({ label: r.name, description: `${r.state}${r.status ? ` · step ${r.status.step}` : ''}`, detail: r.dir, dir: r.dir })),
    ...(resumableOnly ? [] : [browse]),
  ];
  if (resumableOnly && items.length === 0) {
    void vscode.window.showInformationMessage('GRPO: no run to resume (a resumable run is stopped, failed or crashed and has a checkpoint).');
    return undefined;
  }
  const pick = await vscode.window.showQuickPick(items, { title, matchOnDetail: true });
  if (!pick) return undefined;
  if (pick !== browse) return pick.dir;
  const chosen = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: 'Open Run', defaultUri: folder ? vscode.Uri.file(folder) : undefined });
  const dir = chosen?.[0]?.fsPath;
  if (dir && !fs.existsSync(path.join(dir, 'status.json')) && !fs.existsSync(path.join(dir, 'metrics.jsonl'))) {
    void vscode.window.showErrorMessage(`GRPO: ${dir} is not a run directory (no status.json or metrics.jsonl).`);
    return undefined;
  }
  return dir;
}

async function selectInterpreter(training: TrainingController): Promise<void> {
  const ws = vscode.workspace.workspaceFolders?.map((f) => f.uri.fsPath) ?? [];
  const current = vscode.workspace.getConfiguration('grpo').get<string>('pythonPath', '');
  const found = await listCandidates({ workspaceFolders: ws });
  const enter = { label: '$(edit) Enter interpreter path…', python: '' };
  const items = [
    ...found.map((c) => ({ label: c.python, description: SOURCE_LABEL[c.source] + (c.python === current ? ' · current' : ''), python: c.python })),
    enter,
  ];
  const pick = await vscode.window.showQuickPick(items, { title: 'Python interpreter for the GRPO trainer (needs torch and transformers)' });
  if (!pick) return;
  const python = pick === enter ? await vscode.window.showInputBox({ prompt: 'Path to a Python interpreter', value: current }) : pick.python;
  if (!python) return;
  const r = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `GRPO: checking ${python}…` }, () => checkInterpreter(python, training.trainerDir));
  if (!r.ok) {
    const use = await vscode.window.showWarningMessage(`GRPO: ${python} cannot run the trainer: ${r.reason}.`, 'Use Anyway', 'Set Up Python Environment');
    if (use === 'Set Up Python Environment') void vscode.commands.executeCommand(SETUP_COMMAND);
    if (use !== 'Use Anyway') return;
  }
  const wrote = await selectPython(python, 'workspace');
  void vscode.window.showInformationMessage(`GRPO: using ${python}${r.ok ? ` (${r.versions})` : ''}; grpo.pythonPath is set in ${wrote}.`);
}

