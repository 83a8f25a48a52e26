/** "GRPO: Select Python Interpreter": pick a discovered interpreter (or enter one), check it against the
 * trainer in `trainerDir`, select it. */
import * as vscode from 'vscode';
import { selectPython, SETUP_COMMAND } from './envSetup';
import { checkInterpreter, listCandidates, SOURCE_LABEL } from './python';

export async function selectInterpreter(trainerDir: string): Promise<void> {
  if (!vscode.workspace.isTrusted) {
    // checking an interpreter runs it, and a workspace's .venv is the workspace's code
    void vscode.window.showWarningMessage('GRPO: trust this workspace to choose and check a Python interpreter.');
    return;
  }
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
  const r = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `GRPO: checking ${python}…` }, () => checkInterpreter(python, trainerDir));
  if (!r.ok) {
    const use = await vscode.window.showWarningMessage(`GRPO: ${python} cannot run the trainer: ${r.reason}.`, 'Use Anyway', 'Set Up Python Environment');
    if (use === 'Set Up Python Environment') void vscode.commands.executeCommand(SETUP_COMMAND);
    if (use !== 'Use Anyway') return;
  }
  const wrote = await selectPython(python, 'workspace');
  void vscode.window.showInformationMessage(`GRPO: using ${python}${r.ok ? ` (${r.versions})` : ''}; grpo.pythonPath is set in ${wrote}.`);
}
