/**
 * "Edit a completion, see it re-scored": a completion document opened from a group is editable; once typing
 * pauses (RESCORE_DELAY_MS) its text goes to the trainer as a `rescore` request — the live trainer or
 * `python -m grpo serve`, whichever the hover's scoring uses — one request at a time per document, answers
 * for older text dropped (../shared/latestOnly.ts). The answer shows in the editor: CodeLens lines above the
 * text (reward and advantage against what the group logged, the group's advantages recomputed with the edit
 * in place, step rewards) and per-token KL shading with the hover (log-probs, KL, π_θ/π_ref, the token's
 * advantage and step, and what scored it) on the edited text's own tokens.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { RescoreParams, RescoreResult } from '../shared/records';
import { LatestOnly, type Outcome } from '../shared/latestOnly';
import { fmt } from '../shared/values';
import type { GroupOrigin } from './inspectorProtocol';
import { COMPLETION_SCHEME, completionRef, type CompletionRef, type TokenShading } from './editor';
import { lensTitles, rescoredScores, rescoreParams, type LensState } from './rescoreView';

export const RESCORE_DELAY_MS = 400;

/** Sends `rescore` where the hover's scoring goes (InspectCommands.request). */
export type Rescorer = (target: { runDir: string; checkpoint: string | null }, params: RescoreParams, token: vscode.CancellationToken)
  => Promise<{ result: RescoreResult; origin: GroupOrigin }>;

interface Sent { version: number; text: string; cancel: vscode.CancellationTokenSource }
interface Doc { ref: CompletionRef; runner: LatestOnly<{ result: RescoreResult; origin: GroupOrigin }>; state: LensState; last: RescoreResult | null; sent: Map<number, Sent> }

export class RescoreController implements vscode.CodeLensProvider, vscode.Disposable {
  private readonly docs = new Map<string, Doc>();
  private readonly lensesChanged = new vscode.EventEmitter<void>();
  readonly onDidChangeCodeLenses = this.lensesChanged.event;
  private readonly subs: vscode.Disposable[] = [];

  constructor(private readonly shading: TokenShading, private readonly rescore: Rescorer, private readonly log: vscode.LogOutputChannel, private readonly delayMs = RESCORE_DELAY_MS) {
    this.subs.push(
      vscode.workspace.onDidChangeTextDocument((e) => {
        if (e.document.uri.scheme === COMPLETION_SCHEME && e.contentChanges.length) this.edited(e.document);
      }),
      vscode.workspace.onDidCloseTextDocument((d) => this.forget(d.uri.toString())),
      this.lensesChanged,
    );
  }

  private edited(doc: vscode.TextDocument): void {
    const key = doc.uri.toString();
    let d = this.docs.get(key);
    if (!d) {
      const ref = completionRef(doc.uri);
      if (!ref) return;
      const sent = new Map<number, Sent>();
      const runner = new LatestOnly(this.delayMs, (generation) => {
        const text = doc.getText();
        const s: Sent = { version: doc.version, text, cancel: new vscode.CancellationTokenSource() };
        sent.set(generation, s);
        return this.rescore({ runDir: ref.run, checkpoint: ref.checkpoint }, rescoreParams(ref, text), s.cancel.token);
      }, (outcome, generation) => this.answered(doc, outcome, generation), undefined, (generation) => this.dropped(sent, generation));
      d = { ref, runner, state: { kind: 'logged' }, last: null, sent };
      this.docs.set(key, d);
    }
    d.runner.changed();
    d.state = { kind: 'pending', last: d.last };
    this.lensesChanged.fire();
  }

  private dropped(sent: Map<number, Sent>, generation: number): void {
    sent.get(generation)?.cancel.dispose();
    sent.delete(generation);
  }

  private answered(doc: vscode.TextDocument, outcome: Outcome<{ result: RescoreResult; origin: GroupOrigin }>, generation: number): void {
    const d = this.docs.get(doc.uri.toString());
    const s = d?.sent.get(generation);
    if (!d || !s) return;
    this.dropped(d.sent, generation);
    if (!outcome.ok) {
      const e = outcome.error;
      if (e instanceof vscode.CancellationError) return;
      const message = (e as Error).message ?? String(e);
      this.log.warn(`rescore ${path.basename(doc.uri.path)}: ${message}`);
      d.state = { kind: 'error', message };
      this.lensesChanged.fire();
      return;
    }
    if (doc.version !== s.version) return; // edited since (a newer request follows)
    const { result, origin } = outcome.value;
    const against = origin.checkpoint ? `${path.basename(origin.checkpoint)} via python -m grpo serve` : `the live policy (step ${origin.step ?? '?'}) via the live trainer`;
    const ref = d.ref;
    const from = ref.logged ? `logged at training step ${ref.step ?? '?'}` : 'sampled';
    this.shading.set(doc, rescoredScores(result, s.text, `your edit of completion ${ref.index} (${from}), re-scored by ${against} of run ${path.basename(ref.run)}, after the question's training prompt; sequence KL ${fmt(result.sequence_kl, 5)}`));
    d.last = result;
    d.state = { kind: 'result', result };
    vscode.window.setStatusBarMessage(`GRPO: ${path.basename(doc.uri.path)} re-scored by ${against} · reward ${fmt(result.reward, 2)} · sequence KL ${fmt(result.sequence_kl, 4)}`, 8000);
    this.log.info(`rescore ${path.basename(doc.uri.path)}: reward ${result.reward}, advantage ${result.advantage}, group advantages [${result.advantages.join(', ')}] (${against})`);
    this.lensesChanged.fire();
  }

  /** What the lines above a completion say now (tests and the e2e read them through the editor). */
  titles(doc: vscode.TextDocument): string[] {
    const ref = this.docs.get(doc.uri.toString())?.ref ?? completionRef(doc.uri);
    if (!ref) return [];
    return lensTitles(ref, this.docs.get(doc.uri.toString())?.state ?? { kind: 'logged' });
  }

  provideCodeLenses(doc: vscode.TextDocument): vscode.CodeLens[] {
    const top = new vscode.Range(0, 0, 0, 0);
    return this.titles(doc).map((title) => new vscode.CodeLens(top, { title, command: '' }));
  }

  private forget(key: string): void {
    const d = this.docs.get(key);
    if (!d) return;
    d.runner.dispose();
    d.sent.forEach((s) => {
      s.cancel.cancel();
      s.cancel.dispose();
    });
    this.docs.delete(key);
  }

  dispose(): void {
    [...this.docs.keys()].forEach((k) => this.forget(k));
    this.subs.forEach((s) => s.dispose());
  }
}
