/** Webview plumbing shared by the dashboard panel and the training view: CSP'd HTML and a typed channel. */
import * as crypto from 'node:crypto';
import * as vscode from 'vscode';

export function nonce(): string {
  return crypto.randomBytes(16).toString('base64');
}

/** Local resources only: the bundled scripts and the media folder. */
export function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewOptions {
  return {
    enableScripts: true,
    localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist', 'webview'), vscode.Uri.joinPath(extensionUri, 'media')],
  };
}

/**
 * The page for a webview front-end: a strict CSP (scripts only with this page's nonce, styles and
 * fonts only from the extension, no network at all), one stylesheet and one bundled script.
 */
export function webviewHtml(webview: vscode.Webview, extensionUri: vscode.Uri, opts: { script: string; style: string; title: string; body?: string }): string {
  const n = nonce();
  const script = webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'dist', 'webview', opts.script));
  const style = webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'media', opts.style));
  const csp = [
    "default-src 'none'",
    `img-src ${webview.cspSource} data:`,
    `style-src ${webview.cspSource}`,
    `font-src ${webview.cspSource}`,
    `script-src 'nonce-${n}'`,
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link href="${style}" rel="stylesheet">
<title>${opts.title}</title>
</head>
<body>
${opts.body ?? '<div id="app"></div>'}
<script nonce="${n}" src="${script}"></script>
</body>
</html>`;
}

/**
 * A typed, validated channel to one webview. Messages from the webview are checked with `isIncoming`
 * (anything else is logged and dropped). Nothing is posted before the webview says `ready`; when it does
 * (first load, or again after being hidden and re-created), `onReady` sends it a full snapshot.
 */
export class WebviewChannel<In extends { type: string }, Out> implements vscode.Disposable {
  private ready = false;
  private readonly subs: vscode.Disposable[] = [];
  constructor(
    private readonly webview: vscode.Webview,
    isIncoming: (v: unknown) => v is In,
    handlers: { onReady(msg: In): void; onMessage(msg: In): void; onInvalid(v: unknown): void },
  ) {
    this.subs.push(
      webview.onDidReceiveMessage((v: unknown) => {
        if (!isIncoming(v)) return handlers.onInvalid(v);
        if (v.type === 'ready') {
          this.ready = true;
          handlers.onReady(v);
        } else handlers.onMessage(v);
      }),
    );
  }
  get isReady(): boolean {
    return this.ready;
  }
  /** The webview was destroyed (hidden without retained context, or re-rendered): wait for `ready`. */
  reset(): void {
    this.ready = false;
  }
  post(msg: Out): void {
    if (this.ready) void this.webview.postMessage(msg);
  }
  dispose(): void {
    this.subs.forEach((d) => d.dispose());
  }
}
