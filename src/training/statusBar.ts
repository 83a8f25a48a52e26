/** The status bar item: state, "SFT step N/M" or "step N · reward R" while a run is live; opens the dashboard. */
import * as vscode from 'vscode';
import type { LiveSummary } from './panelProtocol';
import { statusText } from './session';

const ICON: Record<LiveSummary['state'], string> = {
  starting: '$(loading~spin)',
  running: '$(sync~spin)',
  paused: '$(debug-pause)',
  stopped: '$(debug-stop)',
  finished: '$(pass)',
  failed: '$(error)',
};

export class TrainingStatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('grpo.status', vscode.StatusBarAlignment.Left, 50);
  constructor() {
    this.item.name = 'GRPO Training';
    this.item.command = 'grpo.openDashboard';
  }

  update(s: LiveSummary | null): void {
    if (!s) {
      this.item.hide();
      return;
    }
    this.item.text = `${ICON[s.state]} ${statusText(s)}`;
    this.item.tooltip = new vscode.MarkdownString(
      `**GRPO run ${s.runName}** — ${s.state}${s.attached ? ' (re-attached)' : ''}\n\n` +
        (s.error ? `Error: ${s.error}\n\n` : '') +
        'Click to open the dashboard.',
    );
    this.item.backgroundColor = s.state === 'failed' ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
    this.item.show();
  }

  dispose(): void {
    this.item.dispose();
  }
}
