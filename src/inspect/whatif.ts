/**
 * The What-if panel's host side: one panel, reused ("What if: step N"), that asks the trainer to replay a
 * logged step (`replay`: the live trainer of the run, or `python -m grpo serve` on its latest checkpoint)
 * under the variants the page chose, and shows the answer. One request at a time: a new one, Cancel, showing
 * another step or closing the panel cancels the one in flight (the trainer may still finish it; its late
 * answer is dropped). Every failure is shown in the panel, in the trainer's words when it answered one.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { ReplayParams, ReplayResult } from '../shared/records';
import type { SettingValues } from '../shared/settings';
import { readConfig, replayableSteps } from '../rundir/runDir';
import { SingletonPanel } from '../webviews/singletonPanel';
import { WebviewChannel, webviewHtml } from '../webviews/webviewHtml';
import { checkVariant, DEFAULT_CHOSEN, isWhatIfToHost, VARIANT_PRESETS, type Chosen, type HostToWhatIf, type WhatIfPhase, type WhatIfToHost, type WhatIfView } from './whatifProtocol';

/** Sends the replay request for a run (`source`: who answered, in words: "the live trainer", "python -m grpo serve (step_000020)"). */
export type ReplayRunner = (runDir: string, params: ReplayParams, token: vscode.CancellationToken) => Promise<{ result: ReplayResult; source: string }>;

/** The settings the presets change, from the run's config.json (to mark the presets that are the run's own). */
function runSettingsOf(runDir: string): SettingValues | null {
  const cfg = readConfig(runDir);
  if (!cfg) return null;
  const keys = new Set(VARIANT_PRESETS.flatMap((p) => Object.keys(p.settings)));
  const out: SettingValues = {};
  for (const k of keys) {
    const v = cfg[k];
    if (v === null || ['string', 'number', 'boolean'].includes(typeof v)) out[k] = v as SettingValues[string];
  }
  return out;
}

export class WhatIfPanel implements vscode.Disposable {
  private static readonly one = new SingletonPanel<WhatIfPanel>('grpo.whatif', 'GRPO What if', true);
  static readonly viewType = WhatIfPanel.one.viewType;
  /** what was chosen last (this window): the next What if… starts from it */
  private static lastChosen: Chosen = DEFAULT_CHOSEN;
  private readonly channel: WebviewChannel<WhatIfToHost, HostToWhatIf>;
  private readonly subs: vscode.Disposable[] = [];
  private view: WhatIfView | null = null;
  private inFlight: vscode.CancellationTokenSource | null = null;
  private disposed = false;

  /** Shows the panel for step `step` of run `runDir` with the chooser (a request for another step is cancelled). */
  static show(extensionUri: vscode.Uri, log: vscode.LogOutputChannel, run: ReplayRunner, runDir: string, step: number): WhatIfPanel {
    const p = WhatIfPanel.one.show(extensionUri, (panel) => new WhatIfPanel(panel, extensionUri, log, run));
    if (p.view && p.view.runDir === runDir && p.view.step === step) { // as it was: its result, or its request in flight
      if (p.view.phase.kind !== 'loading' && p.view.phase.kind !== 'result') {
        p.view = { ...p.view, replayable: replayableSteps(runDir) }; // a live run writes and prunes records as it trains
        p.send();
      }
      return p;
    }
    p.drop();
    p.view = { runDir, runName: path.basename(runDir), step, runSettings: runSettingsOf(runDir), replayable: replayableSteps(runDir), chosen: WhatIfPanel.lastChosen, phase: { kind: 'choose' } };
    p.panel.title = `What if: step ${step}`;
    p.send();
    return p;
  }

  private constructor(readonly panel: vscode.WebviewPanel, private readonly extensionUri: vscode.Uri, private readonly log: vscode.LogOutputChannel, private readonly run: ReplayRunner) {
    panel.iconPath = vscode.Uri.joinPath(extensionUri, 'media', 'grpo.svg');
    this.channel = new WebviewChannel<WhatIfToHost, HostToWhatIf>(panel.webview, isWhatIfToHost, {
      onReady: () => this.send(),
      onMessage: (m) => {
        if (m.type === 'replay') void this.replay(m.variants, m.chosen);
        else if (m.type === 'cancel') this.cancel();
        else if (m.type === 'openStep' && this.view) WhatIfPanel.show(this.extensionUri, this.log, this.run, this.view.runDir, m.step);
        else if (m.type === 'log') (m.level === 'error' ? log.error(m.message) : log.info(m.message));
      },
      onInvalid: (v) => log.warn(`what if: dropped an invalid message ${JSON.stringify(v)?.slice(0, 200)}`),
    });
    panel.webview.html = webviewHtml(panel.webview, extensionUri, { script: 'whatif.js', style: 'whatif.css', title: 'GRPO What if' });
    this.subs.push(this.channel, panel.onDidDispose(() => this.dispose()));
  }

  private setPhase(phase: WhatIfPhase): void {
    if (!this.view || this.disposed) return;
    this.view = { ...this.view, phase };
    this.send();
  }

  private async replay(variants: SettingValues[], chosen: Chosen): Promise<void> {
    const v = this.view;
    if (!v) return;
    const bad = variants.map((x) => checkVariant(x)).find((e) => e !== null);
    if (bad) return this.setPhase({ kind: 'error', message: `not replayed: ${bad}` });
    WhatIfPanel.lastChosen = chosen;
    this.view = { ...v, chosen };
    this.drop();
    const cts = new vscode.CancellationTokenSource();
    this.inFlight = cts;
    const t0 = Date.now();
    this.setPhase({ kind: 'loading', variants, since: t0 });
    const params: ReplayParams = { step: v.step, variants };
    this.log.info(`what if: replaying step ${v.step} of ${v.runName} under ${variants.length} variant(s) ${JSON.stringify(variants)}`);
    try {
      const done = await this.run(v.runDir, params, cts.token);
      if (this.inFlight !== cts) return; // cancelled or replaced meanwhile
      this.log.info(`what if: step ${v.step} replayed by ${done.source} in ${((Date.now() - t0) / 1000).toFixed(1)} s (trainer: ${done.result.seconds.toFixed(1)} s), ${done.result.completions.length} completions × ${done.result.variants.length} variants`);
      this.setPhase({ kind: 'result', result: done.result, source: done.source });
    } catch (e) {
      if (this.inFlight !== cts) return;
      if (e instanceof vscode.CancellationError) return this.setPhase({ kind: 'cancelled' });
      const message = (e as Error).message;
      this.log.warn(`what if: step ${v.step} of ${v.runName}: ${message}`);
      if (this.view) this.view = { ...this.view, replayable: replayableSteps(v.runDir) };
      this.setPhase({ kind: 'error', message });
    } finally {
      if (this.inFlight === cts) this.inFlight = null;
      cts.dispose();
    }
  }

  /** Forgets the request in flight, if any, without a word (another one replaces it). */
  private drop(): void {
    const cts = this.inFlight;
    this.inFlight = null;
    cts?.cancel();
  }

  /** Stops waiting for the request in flight, if any (the page hears `cancelled`). */
  private cancel(): void {
    const cts = this.inFlight;
    if (!cts) return;
    cts.cancel(); // the runner rejects with a CancellationError: replay() says so (if this panel still shows that request)
  }

  private send(): void {
    if (this.view && !this.disposed) this.channel.post({ type: 'view', view: this.view });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.inFlight?.cancel();
    this.inFlight = null;
    WhatIfPanel.one.forget(this);
    this.subs.forEach((d) => d.dispose());
    this.panel.dispose();
  }
}
