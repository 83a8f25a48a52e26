/**
 * The Prompt Atlas view (a tree in the GRPO container): the chosen run's questions grouped by category
 * (learned, forgotten, unstable, never solved, always solved; counts in the headers), each with a text
 * sparkline of its training pass rates and held-out answers. It follows the chosen run — the Runs view's
 * selection, else the run live in this window, else the newest — and, while that run trains and the view is
 * visible, reads questions.jsonl's new rows every second. A click opens the question's logged groups in the
 * group inspector (through `openQuestion`, wired by the composition root), or says there is none and shows
 * its history.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { ATLAS_PAGE, CATEGORIES, CATEGORY_LABEL, describeHistory, MAX_QUESTION_CHARS, questionKey, sparkText, type Category, type QuestionHistory } from './atlas';
import { AtlasFeed } from './atlasFeed';
import { latestRun } from '../runsview/commands';
import { runDirOf, type RunNode } from '../runsview/runsTree';
import type { TrainingController } from '../training/controller';

const POLL_MS = 1000;

export type AtlasNode =
  | { kind: 'category'; category: Category; count: number }
  | { kind: 'question'; runDir: string; h: QuestionHistory }
  | { kind: 'more'; category: Category; hidden: number };

const ICON: Record<Category, [string, string]> = {
  learned: ['arrow-up', 'charts.green'],
  forgotten: ['arrow-down', 'charts.red'],
  unstable: ['pulse', 'charts.yellow'],
  never: ['circle-slash', 'descriptionForeground'],
  always: ['check-all', 'charts.blue'],
};

/** Opens `question`'s logged groups (samples.jsonl) of run `runDir` in the inspector; false when none was logged. */
export type OpenQuestion = (runDir: string, question: string, same: (logged: string) => boolean) => Promise<boolean>;

export class AtlasViewProvider implements vscode.TreeDataProvider<AtlasNode>, vscode.Disposable {
  static readonly viewId = 'grpo.atlasView';
  private readonly emitter = new vscode.EventEmitter<AtlasNode | undefined>();
  readonly onDidChangeTreeData = this.emitter.event;
  private readonly subs: vscode.Disposable[] = [];
  private feed: AtlasFeed | null = null;
  private view: vscode.TreeView<AtlasNode> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private drawn = -1;

  constructor(private readonly training: TrainingController, private readonly selection: () => readonly RunNode[], private readonly openQuestion: OpenQuestion) {
    this.subs.push(training.onDidChangeRuns(() => this.follow()));
  }

  /** Gives the provider its tree view (for its message, visibility and the Runs view's selection changes). */
  attach(view: vscode.TreeView<AtlasNode>, runsView: vscode.TreeView<RunNode>): void {
    this.view = view;
    this.subs.push(
      view.onDidChangeVisibility(() => this.schedule()),
      runsView.onDidChangeSelection(() => this.follow()),
    );
    this.follow();
  }

  /** The chosen run: the Runs view's selection, else the live run, else the newest. */
  chosenRun(): string | undefined {
    return runDirOf(this.selection()[0]) ?? this.training.live?.dir ?? latestRun(this.training);
  }

  /** Shows run `dir` (default: the chosen run); a different run starts a fresh atlas. */
  follow(dir = this.chosenRun()): void {
    if (dir !== this.feed?.dir) {
      this.feed = dir ? new AtlasFeed(dir) : null;
      this.drawn = -1;
    }
    this.update();
    this.schedule();
  }

  /** "GRPO: Show Prompt Atlas": the view, on the chosen run or the one given (a Runs view node). */
  async show(arg?: unknown): Promise<void> {
    const dir = runDirOf(arg);
    this.follow(dir ?? this.chosenRun());
    await vscode.commands.executeCommand(`${AtlasViewProvider.viewId}.focus`);
  }

  private get live(): boolean {
    return !!this.feed && this.training.live?.dir === this.feed.dir;
  }

  /** Polls questions.jsonl while the view is visible and its run trains (and once more after it ends). */
  private schedule(): void {
    if (this.timer) return;
    if (!this.view?.visible || !this.feed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      const more = this.update();
      if (more || this.live) this.schedule();
    }, POLL_MS);
  }

  /** Reads what is new (bounded), redraws when the atlas changed; true when more is left to read. */
  private update(): boolean {
    const f = this.feed;
    let more = false;
    if (f) {
      try {
        more = f.pump().more;
      } catch (e) {
        f.unreadable = (e as Error).message;
      }
    }
    if (this.view) this.view.message = this.message();
    const version = f ? f.atlas.version : -1;
    if (version !== this.drawn || !f) {
      this.drawn = version;
      this.emitter.fire(undefined);
    }
    if (more) setImmediate(() => this.update());
    return more;
  }

  private message(): string {
    const f = this.feed;
    if (!f) return 'No run yet: train one, or pick one in the Runs view.';
    const name = path.basename(f.dir);
    if (f.unreadable) return `${name}: questions.jsonl is unreadable (${f.unreadable}).`;
    const a = f.atlas;
    if (!a.counts.rows && !a.counts.badRows) {
      return `${name} has no questions.jsonl rows yet${this.live ? ' (the first is written after the first GRPO step)' : ' (a run trained before the prompt atlas has none)'}.`;
    }
    const bad = a.counts.badRows ? ` · ${a.counts.badRows} bad row${a.counts.badRows === 1 ? '' : 's'} skipped` : '';
    const untracked = a.counts.untracked ? ` · ${a.counts.untracked} observations past the question cap` : '';
    return `${name}${this.live ? ' (live)' : ''} · ${a.size.toLocaleString('en-US')} questions · step ${a.lastStep}${bad}${untracked}`;
  }

  getTreeItem(n: AtlasNode): vscode.TreeItem {
    switch (n.kind) {
      case 'category': {
        const item = new vscode.TreeItem(`${CATEGORY_LABEL[n.category]} (${n.count.toLocaleString('en-US')})`,
          n.count === 0 ? vscode.TreeItemCollapsibleState.None : vscode.TreeItemCollapsibleState.Collapsed); // the headers are the overview
        const [icon, color] = ICON[n.category];
        item.iconPath = new vscode.ThemeIcon(icon, new vscode.ThemeColor(color));
        item.id = `atlas:${n.category}`;
        item.tooltip = CATEGORY_HELP[n.category];
        item.contextValue = 'atlasCategory';
        return item;
      }
      case 'question': {
        const h = n.h;
        const item = new vscode.TreeItem(oneLine(h.question, 80), vscode.TreeItemCollapsibleState.None);
        item.description = sparkDescription(h);
        const md = new vscode.MarkdownString();
        md.appendText(h.question.length > 600 ? `${h.question.slice(0, 600)}…` : h.question);
        md.appendMarkdown('\n\n---\n\n');
        md.appendText(describeHistory(h).split('\n').join('\n\n'));
        md.appendMarkdown('\n\n*Click: its logged groups in the group inspector.*');
        item.tooltip = md;
        item.id = `atlas:${h.category}:${h.question}`;
        item.contextValue = 'atlasQuestion';
        item.command = { command: 'grpo.atlas.openQuestion', title: 'Open in Group Inspector', arguments: [n] };
        return item;
      }
      case 'more': {
        const item = new vscode.TreeItem(`… ${n.hidden.toLocaleString('en-US')} more`, vscode.TreeItemCollapsibleState.None);
        item.description = `the first ${ATLAS_PAGE} are listed`;
        item.id = `atlas:${n.category}:more`;
        return item;
      }
    }
  }

  getChildren(n?: AtlasNode): AtlasNode[] {
    const f = this.feed;
    if (!f || (!f.atlas.size && !n)) return [];
    if (!n) {
      const counts = f.atlas.categoryCounts();
      return CATEGORIES.map((category) => ({ kind: 'category' as const, category, count: counts[category] }));
    }
    if (n.kind !== 'category') return [];
    const { items, total } = f.atlas.list(n.category, ATLAS_PAGE);
    const out: AtlasNode[] = items.map((h) => ({ kind: 'question' as const, runDir: f.dir, h }));
    if (total > items.length) out.push({ kind: 'more', category: n.category, hidden: total - items.length });
    return out;
  }

  /** A question clicked: its logged groups in the inspector, or (none logged) its history in a message. */
  async open(node: unknown): Promise<void> {
    const n = node as AtlasNode | undefined;
    if (!n || n.kind !== 'question') return;
    const key = n.h.question;
    const same = (logged: string) => (logged.length > MAX_QUESTION_CHARS ? questionKey(logged) === key : logged === key);
    const shown = await this.openQuestion(n.runDir, key, same);
    if (shown) return;
    void vscode.window.showInformationMessage(
      `GRPO: no group of "${oneLine(key, 60)}" was logged in samples.jsonl (the trainer logs one group every log_samples_steps). Its history: ${describeHistory(n.h).split('\n').join(' · ')}`,
    );
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.emitter.dispose();
    this.subs.forEach((d) => d.dispose());
  }
}

const CATEGORY_HELP: Record<Category, string> = {
  learned: 'Unsolved at first, solved from some point on (one change). Solved: a group with pass rate ≥ 0.5, or a right greedy held-out answer.',
  forgotten: 'Solved at first, unsolved from some point on (one change).',
  unstable: 'Solved and unsolved alternate (two changes or more).',
  never: 'No group reached pass rate 0.5 and no greedy held-out answer was right.',
  always: 'Every group reached pass rate 0.5 and every greedy held-out answer was right.',
};

const oneLine = (s: string, n: number) => {
  const t = s.replace(/\s*\n\s*/g, ' ↵ ');
  return t.length > n ? `${t.slice(0, n)}…` : t;
};

/** The row's description: the training pass-rate sparkline, the held-out answers, and the last values. */
function sparkDescription(h: QuestionHistory): string {
  const parts: string[] = [];
  if (h.train.n) parts.push(`${sparkText(h.train.values())} ${Math.round((h.lastTrainRate ?? 0) * 100)}% · ${h.train.n}×`);
  if (h.evals) parts.push(`held-out ${sparkText(h.eval.values())} ${h.evalsRight}/${h.evals}`);
  return parts.join('  ');
}
