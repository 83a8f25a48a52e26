/** Composition root: creates the controller, views, status bar and commands, and wires them together. */
import * as vscode from 'vscode';
import { AtlasViewProvider } from './atlas/atlasView';
import { SETUP_COMMAND, setupEnvironmentCommand } from './environment/envSetup';
import { selectInterpreter } from './environment/selectInterpreter';
import { deleteRun, latestRun, pickRun, revealRun } from './runsview/commands';
import { InspectCommands } from './inspect/commands';
import { COMPLETION_SCHEME, CompletionFiles, TokenShading } from './inspect/editor';
import { RescoreController } from './inspect/rescore';
import { TrainingController } from './training/controller';
import { DashboardPanel } from './dashboard/dashboard';
import { runDirOf, RunsTreeProvider } from './runsview/runsTree';
import { TrainingStatusBar } from './training/statusBar';
import { TrainingViewProvider } from './training/trainingView';

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
  const rescore = new RescoreController(shading, (t, params, token) => inspect.request(t, 'rescore', params, token), log);
  const atlas = new AtlasViewProvider(training, () => runsView.selection, (dir, question, same) => inspect.openQuestion(dir, question, same));
  const atlasView = vscode.window.createTreeView(AtlasViewProvider.viewId, { treeDataProvider: atlas });
  atlas.attach(atlasView, runsView);

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
    atlas,
    atlasView,
    vscode.commands.registerCommand('grpo.showAtlas', (n?: unknown) => atlas.show(n)),
    vscode.commands.registerCommand('grpo.atlas.openQuestion', (n: unknown) => atlas.open(n)),
    rescore,
    vscode.workspace.registerFileSystemProvider(COMPLETION_SCHEME, new CompletionFiles(), { isCaseSensitive: true }),
    vscode.languages.registerCodeLensProvider({ scheme: COMPLETION_SCHEME }, rescore),
    vscode.languages.registerHoverProvider('*', shading),
    vscode.commands.registerCommand('grpo.sampleGroup', (n?: unknown, question?: unknown) => inspect.sampleGroup(n, typeof question === 'string' ? question : undefined)),
    vscode.commands.registerCommand('grpo.inspectTokens', (n?: unknown) => inspect.inspectTokens(n)),
    vscode.commands.registerCommand('grpo.editCompletion', (n?: unknown) => inspect.editCompletion(n)),
    vscode.commands.registerCommand('grpo.compareToReference', (n?: unknown, question?: unknown) => inspect.compare(n, typeof question === 'string' ? question : undefined)),
    vscode.commands.registerCommand('grpo.scoreDocument', (n?: unknown) => inspect.scoreDocument(n)),
    vscode.commands.registerCommand('grpo.toggleShading', () => inspect.toggleShading()),
    vscode.commands.registerCommand('grpo.run.openSamples', (n: unknown) => inspect.openLoggedGroup(n)),
    vscode.commands.registerCommand('grpo.run.whatIf', (n: unknown) => inspect.whatIfNode(n)),
    vscode.commands.registerCommand('grpo.checkRewardTests', (n?: unknown) => inspect.rewardTests.check(inspect.target(n)?.runDir)),
    vscode.window.registerWebviewPanelSerializer(DashboardPanel.viewType, {
      async deserializeWebviewPanel(panel, state) {
        DashboardPanel.revive(panel, ctx.extensionUri, training, state);
      },
    }),

    vscode.commands.registerCommand('grpo.startTraining', () => training.start()),
    vscode.commands.registerCommand('grpo.preflight', async () => {
      await vscode.commands.executeCommand(`${TrainingViewProvider.viewId}.focus`); // the verdict shows there
      await training.preflight.run(training.rememberedValues());
    }),
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
    vscode.commands.registerCommand('grpo.selectInterpreter', () => selectInterpreter(training.trainerDir)),
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
    vscode.commands.registerCommand('grpo.run.reveal', (n: unknown) => revealRun(runDirOf(n))),
    vscode.commands.registerCommand('grpo.run.delete', async (n: unknown) => {
      if (await deleteRun(training, runDirOf(n))) runsTree.refresh();
    }),
  );

  // A run that outlived the previous window (reload, restart) is picked up again.
  if (training.reattach()) statusBar.update(training.summary());
}

export function deactivate(): void {
  // Disposables (ctx.subscriptions) detach from a live trainer without stopping it.
}
