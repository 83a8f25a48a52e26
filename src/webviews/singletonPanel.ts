/**
 * One editor panel of a kind, reused: the first `show` creates it, later ones reveal it, closing it forgets
 * it. The dashboard, the group inspector and the compare view each hold one of these instead of their own
 * static `current` bookkeeping.
 */
import * as vscode from 'vscode';
import { webviewOptions } from './webviewHtml';

export interface PanelOwner extends vscode.Disposable {
  readonly panel: vscode.WebviewPanel;
}

export class SingletonPanel<T extends PanelOwner> {
  private current: T | undefined;

  constructor(readonly viewType: string, private readonly title: string, private readonly retainContextWhenHidden = false) {}

  get instance(): T | undefined {
    return this.current;
  }

  /** The open panel (revealed), or a new one made by `create` around a fresh webview panel. */
  show(extensionUri: vscode.Uri, create: (panel: vscode.WebviewPanel) => T): T {
    if (this.current) {
      this.current.panel.reveal();
      return this.current;
    }
    const panel = vscode.window.createWebviewPanel(this.viewType, this.title, vscode.ViewColumn.Active, { ...webviewOptions(extensionUri), retainContextWhenHidden: this.retainContextWhenHidden });
    return this.adopt(create(panel));
  }

  /** Makes `owner` the one panel (a panel restored by a serializer after a reload), closing any other. */
  adopt(owner: T): T {
    if (this.current && this.current !== owner) this.current.dispose();
    this.current = owner;
    return owner;
  }

  /** Called by the owner when it is disposed. */
  forget(owner: T): void {
    if (this.current === owner) this.current = undefined;
  }
}
