/**
 * "GRPO: Set Up Python Environment": asks where (the extension's global storage, or the workspace's .venv),
 * runs src/environment/pythonEnv.ts under a cancellable progress notification, and selects the result by writing
 * `grpo.pythonPath` where it takes effect. Also the one "No Python" message with its buttons, shown wherever
 * the interpreter check fails.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { readSetupMarker } from './python';
import { chooseTorchSource, DEFAULT_TORCH_CPU_INDEX, hasNvidiaGpu, SetupCancelled, SetupError, setupEnvironment, STEP_LABEL, venvPython } from './pythonEnv';

export const SETUP_COMMAND = 'grpo.setupEnvironment';
const SETUP = 'Set Up Python Environment';
const SELECT = 'Select Python Interpreter';

/** A discovery failure: the message with the ways out (set up, select, log). */
export async function offerPythonFix(message: string, log: vscode.LogOutputChannel): Promise<void> {
  log.error(message);
  const pick = await vscode.window.showErrorMessage(`GRPO: ${message}`, SETUP, SELECT, 'Show Log');
  if (pick === SETUP) void vscode.commands.executeCommand(SETUP_COMMAND);
  else if (pick === SELECT) void vscode.commands.executeCommand('grpo.selectInterpreter');
  else if (pick === 'Show Log') log.show();
}

/** Thrown where a caller cannot show the message itself (the inspection commands report it). */
export class NoPythonError extends Error {}

/**
 * Writes `grpo.pythonPath` where VS Code honours it and says where. In a remote window a machine-overridable
 * setting is read from the remote's settings or the workspace, never the local user settings, so the value is
 * read back after each write and the next target is tried when it did not take effect.
 */
export async function selectPython(python: string, prefer: 'global' | 'workspace'): Promise<string> {
  const hasWorkspace = (vscode.workspace.workspaceFolders?.length ?? 0) > 0;
  const targets = prefer === 'workspace' && hasWorkspace
    ? [vscode.ConfigurationTarget.Workspace, vscode.ConfigurationTarget.Global]
    : [vscode.ConfigurationTarget.Global, ...(hasWorkspace ? [vscode.ConfigurationTarget.Workspace] : [])];
  for (const target of targets) {
    await vscode.workspace.getConfiguration('grpo').update('pythonPath', python, target);
    if (vscode.workspace.getConfiguration('grpo').get<string>('pythonPath') === python) {
      if (target === vscode.ConfigurationTarget.Workspace) return 'the workspace settings';
      return vscode.env.remoteName ? `the Remote (${vscode.env.remoteName}) settings` : 'the User settings';
    }
  }
  throw new Error(`grpo.pythonPath = ${python} did not take effect in ${hasWorkspace ? 'the User or workspace' : 'the User'} settings (a folder setting overrides it?)`);
}

interface Where { label: string; description: string; detail: string; dir: string; prefer: 'global' | 'workspace' }

export async function setupEnvironmentCommand(ctx: vscode.ExtensionContext, trainerDir: string, log: vscode.LogOutputChannel): Promise<void> {
  const ws = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  const storage = path.join(ctx.globalStorageUri.fsPath, 'python-env');
  const options: Where[] = [{
    label: '$(globe) Extension storage', description: 'one environment for every workspace', detail: storage, dir: storage, prefer: 'global',
  }];
  if (ws) {
    const dir = path.join(ws, '.venv');
    const exists = fs.existsSync(path.join(dir, 'pyvenv.cfg'));
    options.push({ label: '$(folder) Workspace .venv', description: exists ? 'exists: the requirements are installed into it' : 'only this workspace', detail: dir, dir, prefer: 'workspace' });
  }
  const where = options.length === 1 ? options[0] : await vscode.window.showQuickPick(options, { title: 'Where should the Python environment for the GRPO trainer go?' });
  if (!where) return;

  const requirements = path.join(trainerDir, 'requirements.txt');
  const cfg = vscode.workspace.getConfiguration('grpo.setup');
  const cpuIndex = process.env.GRPO_TORCH_INDEX_URL ?? cfg.get<string>('torchIndexUrl', DEFAULT_TORCH_CPU_INDEX);
  const pipArgs = cfg.get<string[]>('pipArgs', []).filter((a) => typeof a === 'string');
  const torch = chooseTorchSource({ platform: process.platform, nvidiaGpu: await hasNvidiaGpu(), cpuIndex });
  const already = readSetupMarker(venvPython(where.dir));
  log.info(`set-up: ${where.dir} from ${requirements}; torch: ${torch.why}${pipArgs.length ? `; pip arguments: ${pipArgs.join(' ')}` : ''}${already ? `; existing marker: ${JSON.stringify(already)}` : ''}`);

  const abort = new AbortController();
  try {
    const result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'GRPO: setting up Python', cancellable: true },
      async (progress, token) => {
        token.onCancellationRequested(() => abort.abort());
        return setupEnvironment({
          target: where.dir, requirements, trainerDir, torch, pipArgs, signal: abort.signal,
          onProgress: (step, detail) => progress.report({ message: `${STEP_LABEL[step]}${detail ? ` — ${detail}` : ''}` }),
          onOutput: (line) => line.trim() && log.info(`[set-up] ${line}`),
          onWarning: (m) => {
            log.warn(m);
            void vscode.window.showWarningMessage(`GRPO: ${m}`);
          },
        });
      },
    );
    const wrote = await selectPython(result.python, where.prefer);
    log.info(`set-up: done, ${result.python} (${result.versions}); torch: ${result.torch}; grpo.pythonPath written to ${wrote}`);
    void vscode.window.showInformationMessage(`GRPO: Python environment ready: ${result.python} (Python, torch, transformers: ${result.versions}). grpo.pythonPath is set in ${wrote}.`);
  } catch (e) {
    if (e instanceof SetupCancelled) {
      log.warn(`set-up: ${e.message}; ${where.dir} is marked unfinished and is not used`);
      void vscode.window.showInformationMessage(`GRPO: Python set-up ${e.message}. The half-made environment in ${where.dir} is not used; run "GRPO: ${SETUP}" again to finish it.`);
      return;
    }
    const msg = e instanceof SetupError ? `${e.message}. ${e.hint}` : (e as Error).message;
    log.error(`set-up failed: ${msg}`);
    const pick = await vscode.window.showErrorMessage(`GRPO: setting up Python failed: ${msg}`, 'Show Log', 'Retry');
    if (pick === 'Show Log') log.show();
    else if (pick === 'Retry') void vscode.commands.executeCommand(SETUP_COMMAND);
  }
}
