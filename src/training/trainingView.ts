/** The Training view (a webview view in the GRPO container): settings form, run controls, live summary. */
import * as vscode from 'vscode';
import { isPanelToHost, type HostToPanel, type PanelToHost } from './panelProtocol';
import { EMBEDDED_SCHEMA } from '../shared/settings';
import type { TrainingController } from './controller';
import { WebviewChannel, webviewHtml, webviewOptions } from '../webviews/webviewHtml';

export class TrainingViewProvider implements vscode.WebviewViewProvider, vscode.Disposable {
  static readonly viewId = 'grpo.trainingView';
  private channel: WebviewChannel<PanelToHost, HostToPanel> | null = null;
  private readonly subs: vscode.Disposable[] = [];

  constructor(private readonly extensionUri: vscode.Uri, private readonly training: TrainingController) {
    this.subs.push(
      training.onDidChangeSummary((summary) => this.channel?.post({ type: 'summary', summary })),
      training.onDidChangeValues((values) => this.channel?.post({ type: 'values', values })),
      training.preflight.onDidChange((preflight) => this.channel?.post({ type: 'preflight', preflight })),
      vscode.workspace.onDidGrantWorkspaceTrust(() => this.sendInit()),
    );
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    view.webview.options = webviewOptions(this.extensionUri);
    view.webview.html = webviewHtml(view.webview, this.extensionUri, { script: 'panel.js', style: 'panel.css', title: 'GRPO Training' });
    this.channel?.dispose();
    const channel = new WebviewChannel<PanelToHost, HostToPanel>(view.webview, isPanelToHost, {
      onReady: () => this.sendInit(),
      onMessage: (m) => void this.onMessage(m),
      onInvalid: (v) => this.training.log.warn(`training view: dropped an invalid message ${JSON.stringify(v)?.slice(0, 200)}`),
    });
    this.channel = channel;
    // A hidden view's page is torn down; it says `ready` again when shown and gets a fresh snapshot.
    view.onDidChangeVisibility(() => !view.visible && channel.reset(), undefined, this.subs);
    view.onDidDispose(() => {
      channel.dispose();
      if (this.channel === channel) this.channel = null;
    }, undefined, this.subs);
  }

  private sendInit(): void {
    this.channel?.post({ type: 'init', schema: EMBEDDED_SCHEMA, values: this.training.rememberedValues(), trusted: vscode.workspace.isTrusted, summary: this.training.summary(), preflight: this.training.preflight.state });
  }

  private async onMessage(m: PanelToHost): Promise<void> {
    switch (m.type) {
      case 'valuesChanged':
        await this.training.remember(m.values);
        break;
      case 'start':
        // the values travel with the request: the controller checks them once and starts with them
        void this.training.remember(m.values);
        await this.training.start(m.values);
        break;
      case 'preflight':
        void this.training.remember(m.values);
        await this.training.preflight.run(m.values);
        break;
      case 'cancelPreflight':
        this.training.preflight.cancel();
        break;
      case 'control':
        this.training.control(m.action);
        break;
      case 'resetDefaults':
        await this.training.resetValues();
        break;
      case 'openDashboard':
        await vscode.commands.executeCommand('grpo.openDashboard');
        break;
    }
  }

  dispose(): void {
    this.channel?.dispose();
    this.subs.forEach((d) => d.dispose());
  }
}
