/** The Runs commands that act on a run directory: pick one, reveal it, delete it. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { TrainingController } from '../training/controller';
import { isResumable, listRuns } from '../rundir/runDir';

export function latestRun(training: TrainingController): string | undefined {
  const folder = training.runsFolder();
  return folder ? listRuns(folder)[0]?.dir : undefined;
}

export async function pickRun(training: TrainingController, title: string, resumableOnly: boolean): Promise<string | undefined> {
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

export async function revealRun(dir: string | undefined): Promise<void> {
  if (!dir) return;
  const uri = vscode.Uri.file(dir);
  const inWorkspace = vscode.workspace.getWorkspaceFolder(uri) !== undefined;
  await vscode.commands.executeCommand(inWorkspace ? 'revealInExplorer' : 'revealFileInOS', uri);
}

/** Deletes a run after a modal confirmation; true when it was deleted. A live run is never deleted. */
export async function deleteRun(training: TrainingController, dir: string | undefined): Promise<boolean> {
  if (!dir) return false;
  if (training.live?.dir === dir) {
    void vscode.window.showWarningMessage('GRPO: stop the run before deleting it.');
    return false;
  }
  const ok = await vscode.window.showWarningMessage(`Delete run "${path.basename(dir)}" and all its checkpoints?`, { modal: true, detail: dir }, 'Delete');
  if (ok !== 'Delete') return false;
  await vscode.workspace.fs.delete(vscode.Uri.file(dir), { recursive: true, useTrash: false });
  return true;
}
