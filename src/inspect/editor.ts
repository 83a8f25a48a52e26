/**
 * The editor side of inspection:
 *  - completions open as editable documents under the `grpo-completion:` scheme (the URI carries run,
 *    checkpoint, question, prompt, the text itself and, from a group, the group's texts and logged numbers,
 *    so a restored editor still has its content and identity); an edit is re-scored (./rescore.ts), a save
 *    keeps the edit in memory for the session, "Revert File" brings the logged text back;
 *  - per-token background shading (KL or advantage, togglable), re-applied throttled as editors show;
 *  - a hover on every shaded token, answered from the scores cached for that document version.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { GroupRecord } from '../shared/records';
import type { GroupOrigin } from './inspectorProtocol';
import { canShade, fromGroup, hoverAt, shadingRuns, type DocScores, type ShadeMode } from './docScores';
import type { RescoreIdentity } from './rescoreView';

export const COMPLETION_SCHEME = 'grpo-completion';

export interface CompletionRef extends RescoreIdentity {
  run: string;
  checkpoint: string | null;
  step: number | null;
  question: string;
  prompt: string;
  index: number;
  text: string;
}

export function completionUri(ref: CompletionRef, label: string): vscode.Uri {
  const safe = label.replace(/[^A-Za-z0-9_.-]+/g, '-');
  return vscode.Uri.from({ scheme: COMPLETION_SCHEME, path: `/${path.basename(ref.run)}/${safe}.txt`, query: JSON.stringify(ref) });
}

export function completionRef(uri: vscode.Uri): CompletionRef | null {
  if (uri.scheme !== COMPLETION_SCHEME) return null;
  try {
    const r = JSON.parse(uri.query) as CompletionRef;
    return typeof r.text === 'string' && typeof r.prompt === 'string' && typeof r.run === 'string' ? r : null;
  } catch {
    return null;
  }
}

/**
 * Completion documents, editable: reading one gives the text its URI carries (or what was last saved to it
 * in this session); saving keeps the edit in memory, never on disk. Nothing else can be created, moved or
 * deleted here.
 */
export class CompletionFiles implements vscode.FileSystemProvider {
  private readonly saved = new Map<string, { data: Uint8Array; mtime: number }>();
  private readonly changed = new vscode.EventEmitter<vscode.FileChangeEvent[]>();
  readonly onDidChangeFile = this.changed.event;

  watch(): vscode.Disposable {
    return new vscode.Disposable(() => undefined);
  }

  stat(uri: vscode.Uri): vscode.FileStat {
    if (!completionRef(uri)) return { type: vscode.FileType.Directory, ctime: 0, mtime: 0, size: 0 };
    const saved = this.saved.get(uri.toString());
    return { type: vscode.FileType.File, ctime: 0, mtime: saved?.mtime ?? 0, size: this.readFile(uri).byteLength };
  }

  readFile(uri: vscode.Uri): Uint8Array {
    const ref = completionRef(uri);
    if (!ref) throw vscode.FileSystemError.FileNotFound(uri);
    return this.saved.get(uri.toString())?.data ?? new TextEncoder().encode(ref.text);
  }

  writeFile(uri: vscode.Uri, content: Uint8Array): void {
    if (!completionRef(uri)) throw vscode.FileSystemError.NoPermissions('only a completion opened from a group can be saved here');
    this.saved.set(uri.toString(), { data: content, mtime: Date.now() });
    this.changed.fire([{ type: vscode.FileChangeType.Changed, uri }]);
  }

  readDirectory(): [string, vscode.FileType][] {
    return [];
  }

  createDirectory(uri: vscode.Uri): void {
    throw vscode.FileSystemError.NoPermissions(uri);
  }

  delete(uri: vscode.Uri): void {
    throw vscode.FileSystemError.NoPermissions(uri);
  }

  rename(uri: vscode.Uri): void {
    throw vscode.FileSystemError.NoPermissions(uri);
  }
}

const REAPPLY_MS = 80;

export class TokenShading implements vscode.Disposable, vscode.HoverProvider {
  private readonly cache = new Map<string, { version: number; scores: DocScores }>();
  private readonly types = new Map<string, vscode.TextEditorDecorationType>();
  private mode: ShadeMode = 'kl';
  private timer: NodeJS.Timeout | null = null;
  private readonly subs: vscode.Disposable[] = [];
  private readonly invalidated = new vscode.EventEmitter<vscode.TextDocument>();
  /** A scored document changed: its scores no longer match (the owner may re-score it). */
  readonly onDidInvalidate = this.invalidated.event;

  constructor() {
    this.subs.push(
      vscode.window.onDidChangeVisibleTextEditors(() => this.applySoon()),
      vscode.workspace.onDidChangeTextDocument((e) => {
        const key = e.document.uri.toString();
        if (this.cache.has(key) && e.contentChanges.length) {
          this.cache.delete(key);
          this.applySoon();
          this.invalidated.fire(e.document);
        }
      }),
      vscode.workspace.onDidCloseTextDocument((d) => this.cache.delete(d.uri.toString())),
      this.invalidated,
    );
  }

  get shadeMode(): ShadeMode {
    return this.mode;
  }

  scoresOf(doc: vscode.TextDocument): DocScores | undefined {
    const c = this.cache.get(doc.uri.toString());
    return c && c.version === doc.version ? c.scores : undefined;
  }

  set(doc: vscode.TextDocument, scores: DocScores): void {
    this.cache.set(doc.uri.toString(), { version: doc.version, scores });
    this.applySoon();
  }

  clear(doc: vscode.TextDocument): void {
    this.cache.delete(doc.uri.toString());
    this.applySoon();
  }

  /** KL ↔ advantage. Returns the new mode, or a message when no shaded document has advantages. */
  toggle(): { mode: ShadeMode; note: string | null } {
    this.mode = this.mode === 'kl' ? 'advantage' : 'kl';
    const visible = vscode.window.visibleTextEditors.map((e) => this.scoresOf(e.document)).filter((s): s is DocScores => !!s);
    const note = this.mode === 'advantage' && visible.length && !visible.some((s) => canShade(s, 'advantage'))
      ? 'advantages exist only for completions of a sampled or logged group; scored documents stay shaded by KL' : null;
    this.applySoon();
    return { mode: this.mode, note };
  }

  applySoon(): void {
    this.timer ??= setTimeout(() => {
      this.timer = null;
      for (const e of vscode.window.visibleTextEditors) this.apply(e);
    }, REAPPLY_MS);
  }

  private typeFor(colour: string): vscode.TextEditorDecorationType {
    let t = this.types.get(colour);
    if (!t) {
      t = vscode.window.createTextEditorDecorationType({ backgroundColor: colour, rangeBehavior: vscode.DecorationRangeBehavior.ClosedClosed });
      this.types.set(colour, t);
    }
    return t;
  }

  private apply(editor: vscode.TextEditor): void {
    const scores = this.scoresOf(editor.document);
    const runs = scores ? shadingRuns(scores, this.mode) : new Map<string, [number, number][]>();
    const doc = editor.document;
    for (const colour of runs.keys()) this.typeFor(colour);
    for (const [colour, type] of this.types) {
      const ranges = runs.get(colour) ?? [];
      editor.setDecorations(type, ranges.map(([a, b]) => new vscode.Range(doc.positionAt(a), doc.positionAt(b))));
    }
  }

  provideHover(doc: vscode.TextDocument, pos: vscode.Position): vscode.Hover | undefined {
    const scores = this.scoresOf(doc);
    if (!scores) return undefined;
    const h = hoverAt(scores, doc.offsetAt(pos));
    if (!h) return undefined;
    return new vscode.Hover(new vscode.MarkdownString(h.markdown), new vscode.Range(doc.positionAt(h.range[0]), doc.positionAt(h.range[1])));
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.types.forEach((t) => t.dispose());
    this.subs.forEach((d) => d.dispose());
  }
}

/** Opens completion `index` of a group as an editable document, shaded with the group's own numbers. */
export async function openCompletion(shading: TokenShading, group: GroupRecord, origin: GroupOrigin, index: number): Promise<vscode.TextEditor> {
  const ref: CompletionRef = {
    run: origin.runDir, checkpoint: origin.checkpoint, step: origin.step, question: group.question, prompt: group.prompt, index, text: group.completions[index],
    group: group.completions, answer: group.answer, rewards: group.rewards, advantages: group.advantages, stepRewards: group.step_rewards?.[index] ?? null,
    logged: origin.logged,
  };
  const label = `${origin.logged ? `step${group.step ?? origin.step ?? ''}` : origin.checkpoint ? path.basename(origin.checkpoint) : 'live'}-completion-${index}`;
  const doc = await vscode.workspace.openTextDocument(completionUri(ref, label));
  // beside what is open (the group inspector), or where nothing is (from the palette: no empty group left behind)
  const beside = vscode.window.tabGroups.activeTabGroup.activeTab !== undefined;
  const editor = await vscode.window.showTextDocument(doc, { preview: false, viewColumn: beside ? vscode.ViewColumn.Beside : vscode.ViewColumn.Active });
  const source = origin.logged ? `logged at training step ${group.step ?? '?'} (run ${path.basename(origin.runDir)})` : `sampled from ${origin.checkpoint ? path.basename(origin.checkpoint) : 'the live trainer'} (run ${path.basename(origin.runDir)})`;
  const scores = fromGroup(group, index, doc.getText(), `completion ${index}, ${source}`);
  if (scores) shading.set(doc, scores);
  return editor;
}
