/**
 * The inspection panels: the group inspector (rows + token heatmap) and the policy-vs-reference compare
 * view. One of each, reused; the host posts nothing until the page says `ready` and re-sends the whole
 * content when a hidden page is re-created.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { groupKind } from '../shared/groupKind';
import type { CompareResult, GroupRecord } from '../shared/records';
import { listSampleGroups, readSampleGroup } from '../rundir/runDir';
import type { Quantity } from '../shared/values';
import { isCompareToHost, type CompareToHost, type HostToCompare } from './compareProtocol';
import { isInspectorToHost, type GroupOrigin, type LoggedEntry, type HostToInspector, type InspectorToHost } from './inspectorProtocol';
import { SingletonPanel } from '../webviews/singletonPanel';
import { WebviewChannel, webviewHtml } from '../webviews/webviewHtml';

export interface ShownGroup { group: GroupRecord; origin: GroupOrigin; title: string }

/** A group logged at a training step of run `runDir`, as the inspector shows it. */
export function loggedGroup(runDir: string, group: GroupRecord, step = group.step ?? null): ShownGroup {
  return { group, origin: { runDir, checkpoint: null, step, logged: true }, title: `training step ${step ?? '?'} of ${path.basename(runDir)}` };
}

/** The groups the run live in this window logs, as it logs them (the training controller's). */
export interface LoggedGroups {
  readonly onDidLogGroup: vscode.Event<{ runDir: string; group: GroupRecord }>;
  /** Whether `runDir` is the run live in this window. */
  isLive(runDir: string): boolean;
  /** The newest group it logged since this window began watching it, or null. */
  latest(runDir: string): GroupRecord | null;
}

export class InspectorPanel implements vscode.Disposable {
  private static readonly one = new SingletonPanel<InspectorPanel>('grpo.inspector', 'GRPO Group Inspector', true);
  static readonly viewType = InspectorPanel.one.viewType;
  private readonly channel: WebviewChannel<InspectorToHost, HostToInspector>;
  private readonly subs: vscode.Disposable[] = [];
  private shown: (ShownGroup & { focus: number | null; quantity: Quantity | null }) | null = null;
  /** Showing each group the live run logs, as it logs it (the page's "Follow the newest group"). */
  private following = false;
  /** The group list: the groups logged by the shown group's run (samples.jsonl), with their kinds. */
  private logged: { runDir: string; groups: LoggedEntry[] } | null = null;
  /** "Save as reward test" on a completion (./rewardTests.ts) */
  private onSaveRewardTest: ((g: ShownGroup, index: number) => void) | null = null;

  static show(extensionUri: vscode.Uri, log: vscode.LogOutputChannel, live: LoggedGroups, g: ShownGroup, opts: { focus?: number | null; quantity?: Quantity | null; onOpenCompletion(g: ShownGroup, index: number): void; onWhatIf(runDir: string, step: number): void; onSaveRewardTest?(g: ShownGroup, index: number): void }): InspectorPanel {
    const p = InspectorPanel.one.show(extensionUri, (panel) => new InspectorPanel(panel, extensionUri, log, live, opts.onOpenCompletion, opts.onWhatIf));
    p.onSaveRewardTest = opts.onSaveRewardTest ?? null;
    p.following = false; // a group asked for by name is shown until the user says otherwise
    p.present({ ...g, focus: opts.focus ?? null, quantity: opts.quantity ?? null });
    return p;
  }

  private constructor(readonly panel: vscode.WebviewPanel, extensionUri: vscode.Uri, private readonly log: vscode.LogOutputChannel, private readonly live: LoggedGroups, onOpen: (g: ShownGroup, index: number) => void, onWhatIf: (runDir: string, step: number) => void) {
    panel.iconPath = vscode.Uri.joinPath(extensionUri, 'media', 'grpo.svg');
    this.channel = new WebviewChannel<InspectorToHost, HostToInspector>(panel.webview, isInspectorToHost, {
      onReady: () => {
        this.send();
        this.sendLogged();
      },
      onMessage: (m) => {
        if (m.type === 'openCompletion' && this.shown && m.index < this.shown.group.completions.length) onOpen(this.shown, m.index);
        else if (m.type === 'follow') this.follow(m.on);
        else if (m.type === 'openLogged') void this.openLogged(m.step);
        else if (m.type === 'whatIf' && this.shown?.origin.logged && this.shown.origin.step !== null) onWhatIf(this.shown.origin.runDir, this.shown.origin.step);
        else if (m.type === 'saveRewardTest' && this.shown && m.index < this.shown.group.completions.length) this.onSaveRewardTest?.(this.shown, m.index);
        else if (m.type === 'log') (m.level === 'error' ? log.error(m.message) : log.info(m.message));
      },
      onInvalid: (v) => log.warn(`inspector: dropped an invalid message ${JSON.stringify(v)?.slice(0, 200)}`),
    });
    panel.webview.html = webviewHtml(panel.webview, extensionUri, { script: 'inspector.js', style: 'inspect.css', title: 'GRPO Group Inspector' });
    this.subs.push(
      this.channel,
      panel.onDidDispose(() => this.dispose()),
      live.onDidLogGroup((e) => {
        if (this.logged?.runDir === e.runDir && e.group.step !== undefined) {
          // the list read from the file may hold it already; a resumed run logs re-done steps again
          const step = e.group.step;
          this.logged.groups = this.logged.groups.filter((g) => g.step < step);
          this.logged.groups.push({ step, kind: groupKind(e.group) });
          this.sendLogged();
        }
        if (this.following && this.shown?.origin.runDir === e.runDir) this.present({ ...loggedGroup(e.runDir, e.group), focus: null, quantity: null });
      }),
    );
  }

  /** A logged group of the run live in this window can be followed. */
  private get canFollow(): boolean {
    return !!this.shown?.origin.logged && this.live.isLive(this.shown.origin.runDir);
  }

  private follow(on: boolean): void {
    this.following = on && this.canFollow;
    const s = this.shown;
    const newest = this.following && s ? this.live.latest(s.origin.runDir) : null;
    if (s && newest && (newest.step ?? -1) > (s.origin.step ?? -1)) this.present({ ...loggedGroup(s.origin.runDir, newest), focus: null, quantity: null });
    else this.send(); // the page learns whether it follows
  }

  private present(shown: NonNullable<InspectorPanel['shown']>): void {
    this.shown = shown;
    this.panel.title = `GRPO: ${shown.title}`;
    this.send();
    if (this.logged?.runDir !== shown.origin.runDir) void this.loadLogged(shown.origin.runDir);
  }

  /** Reads the run's logged groups (step and kind, without decoding whole groups) for the group list. */
  private async loadLogged(runDir: string): Promise<void> {
    this.logged = { runDir, groups: [] };
    const groups = await listSampleGroups(runDir).catch(() => []);
    if (this.logged?.runDir !== runDir) return; // another run was shown meanwhile
    this.logged = { runDir, groups: groups.slice() };
    this.sendLogged();
  }

  private sendLogged(): void {
    if (this.logged) this.channel.post({ type: 'logged', runDir: this.logged.runDir, groups: this.logged.groups });
  }

  /** The group list's pick: the group the shown run logged at `step`. */
  private async openLogged(step: number): Promise<void> {
    const runDir = this.shown?.origin.runDir;
    if (!runDir) return;
    const r = await readSampleGroup(runDir, step);
    if (!r || !r.ok) {
      const message = `samples.jsonl of run ${path.basename(runDir)}: ${r ? r.error : `no group logged at step ${step}`}`;
      this.log.warn(`inspector: ${message}`);
      this.channel.post({ type: 'error', message });
      return;
    }
    this.following = false; // a group picked by name is shown until the user says otherwise
    this.present({ ...loggedGroup(runDir, r.value, step), focus: null, quantity: null });
  }

  private send(): void {
    const s = this.shown;
    if (s) this.channel.post({ type: 'group', group: s.group, origin: s.origin, title: s.title, focus: s.focus, quantity: s.quantity, follow: this.canFollow ? this.following : null });
  }

  dispose(): void {
    InspectorPanel.one.forget(this);
    this.subs.forEach((d) => d.dispose());
    this.panel.dispose();
  }
}

export class ComparePanel implements vscode.Disposable {
  private static readonly one = new SingletonPanel<ComparePanel>('grpo.compare', 'GRPO Compare', true);
  static readonly viewType = ComparePanel.one.viewType;
  private readonly channel: WebviewChannel<CompareToHost, HostToCompare>;
  private readonly subs: vscode.Disposable[] = [];
  private shown: { result: CompareResult; title: string } | null = null;

  static show(extensionUri: vscode.Uri, log: vscode.LogOutputChannel, result: CompareResult, title: string): ComparePanel {
    const p = ComparePanel.one.show(extensionUri, (panel) => new ComparePanel(panel, extensionUri, log));
    p.shown = { result, title };
    p.panel.title = `GRPO: ${title}`;
    p.send();
    return p;
  }

  private constructor(readonly panel: vscode.WebviewPanel, extensionUri: vscode.Uri, log: vscode.LogOutputChannel) {
    panel.iconPath = vscode.Uri.joinPath(extensionUri, 'media', 'grpo.svg');
    this.channel = new WebviewChannel<CompareToHost, HostToCompare>(panel.webview, isCompareToHost, {
      onReady: () => this.send(),
      onMessage: (m) => m.type === 'log' && (m.level === 'error' ? log.error(m.message) : log.info(m.message)),
      onInvalid: (v) => log.warn(`compare: dropped an invalid message ${JSON.stringify(v)?.slice(0, 200)}`),
    });
    panel.webview.html = webviewHtml(panel.webview, extensionUri, { script: 'compare.js', style: 'inspect.css', title: 'GRPO Compare' });
    this.subs.push(this.channel, panel.onDidDispose(() => this.dispose()));
  }

  private send(): void {
    if (this.shown) this.channel.post({ type: 'compare', result: this.shown.result, title: this.shown.title });
  }

  dispose(): void {
    ComparePanel.one.forget(this);
    this.subs.forEach((d) => d.dispose());
    this.panel.dispose();
  }
}
