/**
 * The dashboard panel: one editor-area webview showing one or more runs. Live rows from the controller
 * are batched (one post per 100 ms); past runs are read from their run directory. The panel serializer
 * restores it, with its runs and smoothing, after a window reload.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { MetricsRow } from '../shared/records';
import { readMetrics, readStartEval, readStatus, withStartRow } from '../rundir/runDir';
import { rowsToColumns } from './columns';
import { isDashboardToHost, type DashboardState, type DashboardToHost, type HostToDashboard, type RunInfo } from './dashboardProtocol';
import type { TrainingController } from '../training/controller';
import { SingletonPanel } from '../webviews/singletonPanel';
import { WebviewChannel, webviewHtml, webviewOptions } from '../webviews/webviewHtml';

const FLUSH_MS = 100;

export class DashboardPanel implements vscode.Disposable {
  private static readonly one = new SingletonPanel<DashboardPanel>('grpo.dashboard', 'GRPO Dashboard');
  static readonly viewType = DashboardPanel.one.viewType;
  private readonly channel: WebviewChannel<DashboardToHost, HostToDashboard>;
  private readonly subs: vscode.Disposable[] = [];
  private runIds: string[] = [];
  private smoothing = 0.6;
  private pending = new Map<string, MetricsRow[]>();
  private flushTimer: NodeJS.Timeout | null = null;

  /** Opens (or reveals) the dashboard and adds `runDirs` to it. */
  static show(extensionUri: vscode.Uri, training: TrainingController, runDirs: string[]): DashboardPanel {
    const p = DashboardPanel.one.show(extensionUri, (panel) => new DashboardPanel(panel, extensionUri, training, null));
    for (const d of runDirs) p.addRun(d);
    return p;
  }

  static revive(panel: vscode.WebviewPanel, extensionUri: vscode.Uri, training: TrainingController, state: unknown): void {
    DashboardPanel.one.adopt(new DashboardPanel(panel, extensionUri, training, state));
  }

  static get instance(): DashboardPanel | undefined {
    return DashboardPanel.one.instance;
  }

  private constructor(readonly panel: vscode.WebviewPanel, extensionUri: vscode.Uri, private readonly training: TrainingController, state: unknown) {
    panel.iconPath = vscode.Uri.joinPath(extensionUri, 'media', 'grpo.svg');
    panel.webview.options = webviewOptions(extensionUri);
    const restored = state as DashboardState | null;
    if (restored && Array.isArray(restored.runIds)) {
      this.runIds = restored.runIds.filter((d) => typeof d === 'string');
      this.smoothing = restored.smoothing;
    }
    this.channel = new WebviewChannel<DashboardToHost, HostToDashboard>(panel.webview, isDashboardToHost, {
      onReady: (m) => {
        if (m.type === 'ready' && m.state) {
          for (const id of m.state.runIds) if (!this.runIds.includes(id)) this.runIds.push(id);
        }
        this.sendAll();
      },
      onMessage: (m) => this.onMessage(m),
      onInvalid: (v) => training.log.warn(`dashboard: dropped an invalid message ${JSON.stringify(v)?.slice(0, 200)}`),
    });
    panel.webview.html = webviewHtml(panel.webview, extensionUri, { script: 'dashboard.js', style: 'dashboard.css', title: 'GRPO Dashboard' });
    this.subs.push(
      this.channel,
      panel.onDidChangeViewState(() => !panel.visible && this.channel.reset()),
      panel.onDidDispose(() => this.dispose()),
      training.onDidAppendMetrics((e) => this.onRows(e.runDir, e.rows, e.replaced)),
      training.onDidChangeSummary(() => this.sendStatus()),
    );
  }

  addRun(dir: string): void {
    if (this.runIds.includes(dir)) return;
    this.runIds.push(dir);
    if (this.channel.isReady) this.sendRun(dir);
  }

  private runInfo(dir: string): RunInfo {
    const live = this.training.current?.dir === dir ? this.training.current : null;
    const st = live?.status ?? (() => {
      const s = readStatus(dir);
      return s?.ok ? s.value : null;
    })();
    return { id: dir, name: path.basename(dir), live: !!live && !live.ended, status: st };
  }

  /** A past run's rows, read incrementally off the file (a 100,000-step metrics.jsonl never stalls the
   * window); past LIMITS.metricsFile the rest is not loaded, and the user is told so. */
  private async rowsOf(dir: string): Promise<MetricsRow[]> {
    const live = this.training.current;
    if (live?.dir === dir) return live.rows;
    const [{ rows, problems, capped }, start] = await Promise.all([readMetrics(dir), readStartEval(dir)]);
    if (problems.length) this.training.log.warn(`${path.join(dir, 'metrics.jsonl')}: ${problems.length} unreadable line(s), first: line ${problems[0].line}: ${problems[0].error}`);
    if (capped) {
      const mb = (n: number) => `${Math.round(n / 1024 / 1024)} MB`;
      const msg = `GRPO: ${path.basename(dir)}/metrics.jsonl is ${mb(capped.size)}; the dashboard shows its first ${mb(capped.read)} (${rows.length} rows, up to step ${rows.at(-1)?.step ?? 0}).`;
      this.training.log.warn(msg);
      void vscode.window.showWarningMessage(msg);
    }
    return withStartRow(rows, start);
  }

  private sendRun(dir: string): void {
    this.pending.delete(dir);
    void this.rowsOf(dir).then((rows) => {
      if (this.runIds.includes(dir)) this.channel.post({ type: 'runData', run: this.runInfo(dir), columns: rowsToColumns(rows), replace: true });
    });
  }

  private sendAll(): void {
    this.pending.clear();
    this.channel.post({ type: 'reset', runs: this.runIds.map((d) => this.runInfo(d)) });
    for (const d of this.runIds) this.sendRun(d);
  }

  private sendStatus(): void {
    const s = this.training.current;
    if (s?.status && this.runIds.includes(s.dir)) this.channel.post({ type: 'runStatus', runId: s.dir, status: s.status, live: !s.ended });
  }

  private onRows(dir: string, rows: MetricsRow[], replaced: boolean): void {
    if (!this.runIds.includes(dir)) return;
    if (replaced) {
      this.sendRun(dir);
      return;
    }
    const list = this.pending.get(dir) ?? [];
    list.push(...rows);
    this.pending.set(dir, list);
    this.flushTimer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  private flush(): void {
    this.flushTimer = null;
    for (const [dir, rows] of this.pending) {
      if (rows.length) this.channel.post({ type: 'runData', run: this.runInfo(dir), columns: rowsToColumns(rows), replace: false });
    }
    this.pending.clear();
  }

  private onMessage(m: DashboardToHost): void {
    switch (m.type) {
      case 'removeRun':
        this.runIds = this.runIds.filter((d) => d !== m.runId);
        this.channel.post({ type: 'removeRun', runId: m.runId });
        break;
      case 'addRun':
        void vscode.commands.executeCommand('grpo.openRun');
        break;
      case 'log':
        if (m.level === 'error') this.training.log.error(m.message);
        else this.training.log.info(m.message);
        break;
    }
  }

  dispose(): void {
    DashboardPanel.one.forget(this);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.subs.forEach((d) => d.dispose());
    this.panel.dispose();
  }
}
