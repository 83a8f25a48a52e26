/** The Runs view: every run directory under the runs folder, expandable to checkpoints and sample steps. */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { formatNumber } from '../shared/format';
import { hasNoSignal, KIND_LABEL, KIND_TITLE, type GroupKind } from '../shared/groupKind';
import { isResumable, listCheckpoints, listSampleGroups, summarizeRuns, type RunSummary } from '../rundir/runDir';
import type { TrainingController } from '../training/controller';

export type RunNode =
  | { kind: 'run'; run: RunSummary }
  | { kind: 'group'; run: RunSummary; group: 'checkpoints' | 'samples' }
  | { kind: 'checkpoint'; run: RunSummary; name: string; step: number; dir: string }
  | { kind: 'sample'; run: RunSummary; step: number; groupKind: GroupKind | null };

const STATE_ICON: Record<string, [string, string?]> = {
  running: ['sync~spin', 'charts.green'],
  paused: ['debug-pause', 'charts.yellow'],
  stopped: ['debug-stop'],
  finished: ['pass', 'charts.green'],
  failed: ['error', 'errorForeground'],
  crashed: ['warning', 'charts.orange'],
  unknown: ['question'],
};

export class RunsTreeProvider implements vscode.TreeDataProvider<RunNode>, vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<RunNode | undefined>();
  readonly onDidChangeTreeData = this.emitter.event;
  private readonly subs: vscode.Disposable[] = [];
  private watcher: vscode.FileSystemWatcher | undefined;
  private refreshTimer: NodeJS.Timeout | null = null;

  constructor(private readonly training: TrainingController) {
    this.subs.push(
      training.onDidChangeRuns(() => this.refreshSoon()),
      vscode.workspace.onDidChangeConfiguration((e) => e.affectsConfiguration('grpo.runsFolder') && (this.watch(), this.refresh())),
    );
    this.watch();
  }

  private watch(): void {
    this.watcher?.dispose();
    const folder = this.training.runsFolder();
    if (!folder) return;
    this.watcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.file(folder), '**/{status.json,config.json}'));
    const r = () => this.refreshSoon();
    this.watcher.onDidCreate(r);
    this.watcher.onDidChange(r);
    this.watcher.onDidDelete(r);
  }

  /** Coalesces bursts of changes (status.json is rewritten on every step) into one refresh per second. */
  refreshSoon(): void {
    this.refreshTimer ??= setTimeout(() => {
      this.refreshTimer = null;
      this.refresh();
    }, 1000);
  }

  refresh(): void {
    this.emitter.fire(undefined);
  }

  getTreeItem(n: RunNode): vscode.TreeItem {
    switch (n.kind) {
      case 'run': {
        const r = n.run;
        const live = this.training.live?.dir === r.dir;
        const item = new vscode.TreeItem(r.name, vscode.TreeItemCollapsibleState.Collapsed);
        const step = r.status ? (r.status.phase === 'sft' ? `SFT ${r.status.sft_step ?? 0}/${r.status.sft_steps ?? '?'}` : `step ${r.status.step}`) : '';
        item.description = r.unreadable
          ? `unreadable: ${r.unreadable}`
          : [r.state, step, r.bestReward !== null ? `best ${formatNumber(r.bestReward)}` : ''].filter(Boolean).join(' · ');
        const [icon, color] = r.unreadable ? ['warning', 'errorForeground'] : (STATE_ICON[r.state] ?? STATE_ICON.unknown);
        item.iconPath = new vscode.ThemeIcon(icon, color ? new vscode.ThemeColor(color) : undefined);
        item.tooltip = new vscode.MarkdownString(
          `**${r.name}**\n\n${r.dir}\n\nstate: ${r.state}${r.status ? `, phase ${r.status.phase}, step ${r.status.step}/${r.status.max_steps}` : ''}` +
            (r.bestReward !== null ? `\n\nbest mean reward: ${formatNumber(r.bestReward, 4)}` : '') +
            (r.status?.error ? `\n\nerror: ${r.status.error}` : '') +
            (r.statusError ? `\n\nstatus.json: ${r.statusError}` : '') +
            (r.unreadable ? `\n\nunreadable: ${r.unreadable} (a run directory is read only as regular files of bounded size)` : ''),
        );
        item.contextValue = `run${isResumable(r.state, r.status) && !live ? '.resumable' : ''}${live ? '.live' : ''}`;
        item.id = r.dir;
        item.command = { command: 'grpo.run.openDashboard', title: 'Open Dashboard', arguments: [n] };
        return item;
      }
      case 'group': {
        const item = new vscode.TreeItem(n.group === 'checkpoints' ? 'Checkpoints' : 'Logged samples', vscode.TreeItemCollapsibleState.Collapsed);
        item.iconPath = new vscode.ThemeIcon(n.group === 'checkpoints' ? 'save-all' : 'list-unordered');
        item.id = `${n.run.dir}#${n.group}`;
        return item;
      }
      case 'checkpoint': {
        const item = new vscode.TreeItem(n.name, vscode.TreeItemCollapsibleState.None);
        item.description = n.step === 0 ? 'starting policy' : `step ${n.step}`;
        item.iconPath = new vscode.ThemeIcon('package');
        item.resourceUri = vscode.Uri.file(n.dir);
        item.contextValue = 'checkpoint';
        item.tooltip = n.dir;
        return item;
      }
      case 'sample': {
        const item = new vscode.TreeItem(`step ${n.step}`, vscode.TreeItemCollapsibleState.None);
        const k = n.groupKind;
        item.description = k ? KIND_LABEL[k] : undefined;
        item.iconPath = k && hasNoSignal(k) ? new vscode.ThemeIcon('circle-slash', new vscode.ThemeColor('disabledForeground')) : new vscode.ThemeIcon('symbol-array');
        item.contextValue = 'sample';
        item.tooltip = `The group logged at this training step${k ? ` (${KIND_LABEL[k]}: ${KIND_TITLE[k]})` : ''}: open it in the group inspector`;
        item.command = { command: 'grpo.run.openSamples', title: 'Open in Group Inspector', arguments: [n] };
        return item;
      }
    }
  }

  async getChildren(n?: RunNode): Promise<RunNode[]> {
    if (!n) {
      const folder = this.training.runsFolder();
      return folder ? (await summarizeRuns(folder)).map((run) => ({ kind: 'run' as const, run })) : [];
    }
    switch (n.kind) {
      case 'run':
        return [{ kind: 'group', run: n.run, group: 'checkpoints' }, { kind: 'group', run: n.run, group: 'samples' }];
      case 'group':
        if (n.group === 'checkpoints') return listCheckpoints(n.run.dir).map((c) => ({ kind: 'checkpoint' as const, run: n.run, name: c.name, step: c.step, dir: c.path }));
        return (await listSampleGroups(n.run.dir)).map((g) => ({ kind: 'sample' as const, run: n.run, step: g.step, groupKind: g.kind }));
      default:
        return [];
    }
  }

  dispose(): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.watcher?.dispose();
    this.emitter.dispose();
    this.subs.forEach((d) => d.dispose());
  }
}

export const runDirOf = (n: unknown): string | undefined =>
  typeof n === 'object' && n !== null && 'run' in n ? (n as { run: RunSummary }).run.dir : typeof n === 'string' ? n : undefined;

export const runLabel = (dir: string) => path.basename(dir);
