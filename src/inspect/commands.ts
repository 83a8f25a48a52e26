/**
 * The inspection commands and the processes behind them:
 *  - GRPO: Sample Group, GRPO: Compare to Reference — requests to the live trainer of the chosen run when
 *    this window trains it, otherwise to a `python -m grpo serve` process for the chosen checkpoint
 *    (one per checkpoint, reused, stopped after 10 idle minutes and on dispose);
 *  - GRPO: Inspect Per-Token Advantages — the heatmap of a completion of a sampled or logged group;
 *  - GRPO: Edit a Completion and Re-score It — a completion of such a group, editable, re-scored as you edit;
 *  - GRPO: Score Document Against Reference — onnxruntime-node in the extension host (no Python) when the
 *    checkpoint has an ONNX export, otherwise the `score` request (live trainer or serve: PyTorch);
 *  - GRPO: Toggle Token Shading — KL ↔ advantage.
 * "The chosen run": the checkpoint or run selected in the Runs view, else the run live in this window,
 * else the most recent run.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { NoPythonError, offerPythonFix } from '../environment/envSetup';
import { findExport, ExportError, type OnnxExport } from './onnx/exports';
import { scorerFor } from './onnx/scorer';
import { TokenizeError } from './onnx/tokenizer';
import type { CompareResult, GroupRecord, InspectRequests, InspectRequestType, ReplayParams, ReplayResult, ScoreResult } from '../shared/records';
import type { GroupOrigin } from './inspectorProtocol';
import { TrainerGoneError, TrainerRequestError } from '../shared/requests';
import { findQuestionSteps, lastSampleQuestion, listCheckpoints, listRuns, listSampleGroups, readSampleGroup } from '../rundir/runDir';
import { groupKind, KIND_LABEL } from '../shared/groupKind';
import { ServeProcess } from './serve';
import { RewardTests } from './rewardTests';
import type { TrainingController } from '../training/controller';
import { ComparePanel, InspectorPanel, loggedGroup, type LoggedGroups, type ShownGroup } from './panels';
import { WhatIfPanel } from './whatif';
import type { RunNode } from '../runsview/runsTree';
import { fromScoreResult, onText } from './docScores';
import { completionRef, openCompletion, TokenShading } from './editor';
import { completionLength, describeLength, fmt, type Quantity } from '../shared/values';

const SERVE_IDLE_MS = 10 * 60_000;

/** A run, and optionally one of its checkpoints (null: the live trainer, or else the latest checkpoint). */
export interface Target { runDir: string; checkpoint: string | null }

/** A user-facing failure: shown as is (no stack), with "Show Log" when the log has more. */
class Shown extends Error {
  constructor(message: string, readonly withLog = false) {
    super(message);
  }
}

export class InspectCommands implements vscode.Disposable {
  private readonly serves = new Map<string, ServeProcess>();
  private readonly recent: ShownGroup[] = [];
  private readonly subs: vscode.Disposable[] = [];
  private readonly reaper: NodeJS.Timeout;
  /** Documents scored by command: what they were scored against, to score them again after an edit. */
  private readonly autoRescore = new Map<string, Target>();
  private rescoreTimers = new Map<string, NodeJS.Timeout>();
  /** The live run's logged groups, for the inspector's "Follow the newest group". */
  private readonly liveGroups: LoggedGroups;
  /** "Save as reward test" and "GRPO: Check Reward Tests" (./rewardTests.ts) */
  readonly rewardTests: RewardTests;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly training: TrainingController,
    private readonly shading: TokenShading,
    private readonly selection: () => readonly RunNode[],
  ) {
    this.reaper = setInterval(() => {
      for (const [k, s] of this.serves) if (!s.alive || s.idleMs > SERVE_IDLE_MS) {
        s.dispose();
        this.serves.delete(k);
      }
    }, 60_000);
    this.subs.push(shading.onDidInvalidate((doc) => this.rescoreSoon(doc)));
    this.rewardTests = new RewardTests(training, () => this.target()?.runDir);
    this.liveGroups = {
      onDidLogGroup: training.onDidLogGroup,
      isLive: (dir) => training.live?.dir === dir,
      latest: (dir) => (training.live?.dir === dir ? training.live.latestGroup : null),
    };
  }

  private get log(): vscode.LogOutputChannel {
    return this.training.log;
  }

  // --- Which run / checkpoint ------------------------------------------------------------------------
  target(explicit?: unknown): Target | undefined {
    const fromNode = (n: RunNode | undefined): Target | undefined =>
      !n ? undefined : n.kind === 'checkpoint' ? { runDir: n.run.dir, checkpoint: n.dir } : { runDir: n.run.dir, checkpoint: null };
    if (typeof explicit === 'object' && explicit !== null && 'kind' in explicit) return fromNode(explicit as RunNode);
    const sel = fromNode(this.selection()[0]);
    if (sel) return sel;
    if (this.training.live) return { runDir: this.training.live.dir, checkpoint: null };
    const folder = this.training.runsFolder();
    const latest = folder ? listRuns(folder)[0] : undefined;
    return latest ? { runDir: latest.dir, checkpoint: null } : undefined;
  }

  private requireTarget(explicit?: unknown): Target {
    const t = this.target(explicit);
    if (!t) throw new Shown(`no run to inspect: the runs folder (${this.training.runsFolder() ?? 'none: open a folder'}) has no run yet. Train one first ("GRPO: Start Training").`);
    return t;
  }

  /** Sends a request to the live trainer (when it trains `t` in this window) or to a serve process. */
  async request<K extends InspectRequestType>(t: Target, type: K, params: InspectRequests[K]['params'], token: vscode.CancellationToken): Promise<{ result: InspectRequests[K]['result']; origin: GroupOrigin }> {
    const live = this.training.live;
    let pending: Promise<InspectRequests[K]['result']>;
    let origin: GroupOrigin;
    if (!t.checkpoint && live && live.dir === t.runDir && live.canRequest) {
      origin = { runDir: t.runDir, checkpoint: null, step: live.status?.step ?? null, logged: false };
      pending = live.request(type, params);
    } else {
      const cps = listCheckpoints(t.runDir);
      const checkpoint = t.checkpoint ?? cps[cps.length - 1]?.path;
      if (!checkpoint) throw new Shown(`run ${path.basename(t.runDir)} has no checkpoint yet (the first is written when SFT ends), so there is no policy to ask.`);
      const serve = await this.serve(t.runDir, checkpoint);
      const info = await raceCancel(serve.ready, token);
      origin = { runDir: t.runDir, checkpoint, step: info.step, logged: false };
      pending = serve.request(type, params);
    }
    return { result: await raceCancel(pending, token), origin };
  }

  /** The serve process of `checkpoint` (of run `runDir`), started when there is none: first the run's user
   * code, if it names any, is shown and agreed to (or left out: --no-user-code), once per run and session. */
  private async serve(runDir: string, checkpoint: string): Promise<ServeProcess> {
    const have = this.serves.get(checkpoint);
    if (have?.alive) return have;
    const found = await this.training.discoverInterpreter();
    if (!found.ok) throw new NoPythonError(found.message);
    const userCode = (await this.training.userCode.forOpen(found.python, runDir, checkpoint)) === 'import';
    const started = this.serves.get(checkpoint); // by another request while the question was open
    if (started?.alive) return started;
    this.log.info(`inspect: starting ${found.python} -m grpo serve --checkpoint ${checkpoint}${userCode ? '' : ' --no-user-code'}`);
    const s = new ServeProcess(found.python, checkpoint, { trainerDir: this.training.trainerDir, workspace: vscode.workspace.workspaceFolders?.[0]?.uri.fsPath, userCode, onStderr: (l) => this.log.appendLine(`[serve] ${l}`) });
    this.serves.set(checkpoint, s);
    return s;
  }

  /** Runs `work` with a cancellable notification; turns every failure into a clear message. */
  private async withProgress<T>(title: string, work: (token: vscode.CancellationToken) => Promise<T>): Promise<T | undefined> {
    try {
      return await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, (_p, token) => work(token));
    } catch (e) {
      if (e instanceof vscode.CancellationError) return undefined;
      this.report(e);
      return undefined;
    }
  }

  private report(e: unknown): void {
    if (e instanceof vscode.CancellationError) return;
    if (e instanceof NoPythonError) return void offerPythonFix(e.message, this.log);
    const err = e as Error;
    const withLog = e instanceof TrainerGoneError || (e instanceof Shown && e.withLog) || !(e instanceof Shown || e instanceof TrainerRequestError || e instanceof TokenizeError || e instanceof ExportError);
    this.log.error(`inspect: ${err.message}`);
    void vscode.window.showErrorMessage(`GRPO: ${err.message}`, ...(withLog ? ['Show Log'] : [])).then((a) => a && this.log.show());
  }

  /** The question box of Sample Group and Compare: pre-filled from the selection or the run's data. */
  private askQuestion(t: Target, title: string, prompt: string): Thenable<string | undefined> {
    return vscode.window.showInputBox({
      title, prompt, value: this.defaultQuestion(t),
      validateInput: (v) => (v.trim() ? null : 'Type a question'), ignoreFocusOut: true,
    });
  }

  // --- GRPO: Sample Group ---------------------------------------------------------------------------
  async sampleGroup(arg?: unknown, presetQuestion?: string): Promise<void> {
    let t: Target;
    try {
      t = this.requireTarget(arg);
    } catch (e) {
      return this.report(e);
    }
    const question = presetQuestion ?? await this.askQuestion(t, `Sample a group from ${describeTarget(t)}`,
      'The question to sample completions for (the answer is computed for the built-in arith task)');
    if (!question) return;
    const done = await this.withProgress(`GRPO: sampling a group from ${describeTarget(t)}…`, (token) => this.request(t, 'sample_group', { question }, token));
    if (!done) return;
    const g: ShownGroup = { group: done.result, origin: done.origin, title: `group for ${clip(question)} (${describeOrigin(done.origin)})` };
    this.remember(g);
    this.showGroup(g);
  }

  private defaultQuestion(t: Target): string {
    const ed = vscode.window.activeTextEditor;
    const sel = ed && !ed.selection.isEmpty ? ed.document.getText(ed.selection).trim() : '';
    if (sel && !sel.includes('\n')) return sel;
    return lastSampleQuestion(t.runDir) ?? '';
  }

  private remember(g: ShownGroup): void {
    this.recent.unshift(g);
    if (this.recent.length > 10) this.recent.pop();
  }

  showGroup(g: ShownGroup, focus: number | null = null, quantity: Quantity | null = null): void {
    InspectorPanel.show(this.extensionUri, this.log, this.liveGroups, g, { focus, quantity, onOpenCompletion: (sg, i) => void this.openCompletion(sg, i), onWhatIf: (dir, step) => this.whatIf(dir, step), onSaveRewardTest: (sg, i) => void this.rewardTests.save(sg, i) });
  }

  // --- What if… (replay a logged step under other objectives) -------------------------------------------
  /** The What-if panel for step `step` of run `runDir`: the page chooses the variants, then asks. */
  whatIf(runDir: string, step: number): void {
    WhatIfPanel.show(this.extensionUri, this.log, (dir, params, token) => this.replay(dir, params, token), runDir, step);
  }

  /** Runs view: a logged step ("Logged samples → step N") in the What-if panel. */
  whatIfNode(node: unknown): void {
    const n = node as RunNode | undefined;
    if (n && typeof n === 'object' && n.kind === 'sample') this.whatIf(n.run.dir, n.step);
  }

  /** The `replay` request: the run's live trainer, or serve on its latest checkpoint (the run's replay records). */
  private async replay(runDir: string, params: ReplayParams, token: vscode.CancellationToken): Promise<{ result: ReplayResult; source: string }> {
    try {
      const done = await this.request({ runDir, checkpoint: null }, 'replay', params, token);
      return { result: done.result, source: done.origin.checkpoint ? `python -m grpo serve (${path.basename(done.origin.checkpoint)})` : 'the live trainer' };
    } catch (e) {
      if (e instanceof NoPythonError) void offerPythonFix(e.message, this.log);
      throw e;
    }
  }

  private async openCompletion(g: ShownGroup, i: number): Promise<void> {
    try {
      const ed = await openCompletion(this.shading, g.group, g.origin, i);
      if (!this.shading.scoresOf(ed.document)) await this.scoreEditor(ed, { runDir: g.origin.runDir, checkpoint: g.origin.checkpoint });
    } catch (e) {
      this.report(e);
    }
  }

  /** Runs view: a logged group (samples.jsonl) in the inspector. */
  async openLoggedGroup(node: unknown): Promise<void> {
    const n = node as RunNode | undefined;
    if (!n || n.kind !== 'sample') return;
    const g = await this.loggedGroup(n.run.dir, n.step);
    if (g) this.showGroup(g);
  }

  /**
   * The prompt atlas: the groups samples.jsonl logged for a question (`same` tells its question), in the
   * inspector — the one there is, or the step picked when there are several. False when none was logged.
   */
  async openQuestion(runDir: string, question: string, same: (logged: string) => boolean): Promise<boolean> {
    const steps = await findQuestionSteps(runDir, same);
    if (!steps.length) return false;
    let step: number | undefined = steps[steps.length - 1];
    if (steps.length > 1) {
      const pick = await vscode.window.showQuickPick([...steps].reverse().map((s) => ({ label: `training step ${s}`, step: s })), { title: `Groups logged for ${clip(question)}` });
      step = pick?.step;
    }
    if (step === undefined) return true;
    const g = await this.loggedGroup(runDir, step);
    if (g && !same(g.group.question)) this.report(new Shown(`samples.jsonl of run ${path.basename(runDir)}: the group logged at step ${step} is another question's`));
    else if (g) this.showGroup(g);
    return true;
  }

  private async loggedGroup(runDir: string, step: number): Promise<ShownGroup | undefined> {
    const r = await readSampleGroup(runDir, step);
    if (!r || !r.ok) {
      this.report(new Shown(`samples.jsonl of run ${path.basename(runDir)}: ${r ? r.error : `no group logged at step ${step}`}`));
      return undefined;
    }
    return loggedGroup(runDir, r.value, step);
  }

  // --- GRPO: Inspect Per-Token Advantages ------------------------------------------------------------
  async inspectTokens(arg?: unknown): Promise<void> {
    const g = await this.pickGroup(arg, 'Inspect the tokens of which group?');
    if (!g) return;
    const group = g.group;
    const which = await pickCompletion(group, 'Which completion?');
    if (!which) return;
    if (!group.tokens) {
      // A sequence-level group (imported from TRL's completion tables) has no per-token values to colour:
      // show the group with the completion focused, and open the completion scored on demand.
      this.showGroup(g, which.i);
      await this.openCompletion(g, which.i);
      return;
    }
    const quantities: { label: string; q: Quantity }[] = [
      { label: 'advantage Â', q: 'advantage' }, { label: 'ratio π_θ/π_old', q: 'ratio' }, { label: 'k3 KL to the reference', q: 'kl' },
      { label: 'log-prob', q: 'logp' }, { label: 'entropy', q: 'entropy' },
    ];
    const q = await vscode.window.showQuickPick(quantities, { title: 'Colour the tokens by' });
    if (!q) return;
    this.showGroup(g, which.i, q.q);
  }

  // --- GRPO: Edit a Completion and Re-score It -------------------------------------------------------
  /** A completion of a sampled or logged group, opened editable: each edit is re-scored (./rescore.ts). */
  async editCompletion(arg?: unknown): Promise<void> {
    const g = await this.pickGroup(arg, 'Edit a completion of which group?');
    if (!g) return;
    const which = await pickCompletion(g.group, 'Edit which completion? (each edit is re-scored: reward, advantages, per-token KL)');
    if (which) await this.openCompletion(g, which.i);
  }

  /** A group sampled in this window or logged by the chosen run (a Runs view "sample" node: that one). */
  private async pickGroup(arg: unknown, title: string): Promise<ShownGroup | undefined> {
    let g: ShownGroup | undefined;
    const n = arg as RunNode | undefined;
    if (n && typeof n === 'object' && n.kind === 'sample') g = await this.loggedGroup(n.run.dir, n.step);
    else {
      const t = this.target(arg);
      const logged = t ? await listSampleGroups(t.runDir) : [];
      type Item = vscode.QuickPickItem & { pick: () => Promise<ShownGroup | undefined> };
      const items: Item[] = [
        ...this.recent.map((r) => ({ label: `$(beaker) ${r.title}`, description: `${r.group.completions.length} completions · ${KIND_LABEL[groupKind(r.group)]}`, pick: async () => r })),
        // the kind in the description: typing "no signal" narrows the list to the groups without signal
        ...logged.slice(-50).reverse().map((g) => ({ label: `$(history) training step ${g.step}`, description: [g.kind ? KIND_LABEL[g.kind] : '', t ? path.basename(t.runDir) : ''].filter(Boolean).join(' · '), pick: () => this.loggedGroup(t!.runDir, g.step) })),
      ];
      if (!items.length) {
        void vscode.window.showInformationMessage(`GRPO: no group to inspect yet: run "GRPO: Sample Group", or train until samples.jsonl logs one${t ? ` (run ${path.basename(t.runDir)} has none)` : ''}.`);
        return;
      }
      const pick = await vscode.window.showQuickPick(items, { title, placeHolder: 'type "no signal" for the groups whose rewards are all equal', matchOnDescription: true });
      g = await pick?.pick();
    }
    return g;
  }

  // --- GRPO: Compare to Reference --------------------------------------------------------------------
  async compare(arg?: unknown, presetQuestion?: string): Promise<void> {
    let t: Target;
    try {
      t = this.requireTarget(arg);
    } catch (e) {
      return this.report(e);
    }
    const question = presetQuestion ?? await this.askQuestion(t, `Compare policy and reference (${describeTarget(t)})`,
      'The question for both models (greedy decoding)');
    if (!question) return;
    const done = await this.withProgress(`GRPO: policy vs reference on ${clip(question)}…`, (token) => this.request(t, 'compare', { question }, token));
    if (!done) return;
    const r: CompareResult = done.result;
    ComparePanel.show(this.extensionUri, this.log, r, `${clip(question)} (${describeOrigin(done.origin)})`);
  }

  // --- GRPO: Score Document Against Reference --------------------------------------------------------
  async scoreDocument(arg?: unknown): Promise<void> {
    const ed = vscode.window.activeTextEditor;
    if (!ed) {
      void vscode.window.showInformationMessage('GRPO: open the document to score first (a solution you wrote, a model output you pasted).');
      return;
    }
    const ref = completionRef(ed.document.uri);
    try {
      const t = ref ? { runDir: ref.run, checkpoint: ref.checkpoint } : this.requireTarget(arg);
      await this.scoreEditor(ed, t);
      this.autoRescore.set(ed.document.uri.toString(), t);
    } catch (e) {
      this.report(e);
    }
  }

  /**
   * The ONNX export to score `t` with in the editor, or null (then the trainer scores it). A completion's
   * own checkpoint may predate its export; its run's latest export still scores it.
   */
  private exportFor(t: Target, completion: boolean): OnnxExport | null {
    const tries = [t.checkpoint ?? t.runDir, ...(completion && t.checkpoint ? [t.runDir] : [])];
    const why: string[] = [];
    for (const where of tries) {
      try {
        return findExport(where);
      } catch (e) {
        if (!(e instanceof ExportError)) throw e;
        why.push(e.message);
      }
    }
    this.log.info(`score: scoring through the trainer: ${why.join('; ')}`);
    return null;
  }

  /**
   * Scores a document against the policy and its reference (a completion as a continuation of its
   * question's prompt): with onnxruntime-node on the checkpoint's ONNX export when it has one, otherwise
   * with the `score` request (the live trainer, or `python -m grpo serve`: PyTorch, the GPU if any).
   */
  private async scoreEditor(ed: vscode.TextEditor, t: Target, quiet = false): Promise<void> {
    const doc = ed.document;
    const ref = completionRef(doc.uri);
    const version = doc.version;
    const text = doc.getText();
    const prompt = ref ? ref.prompt : '';
    const t0 = performance.now();
    const exp = this.exportFor(t, ref !== null);
    let res: ScoreResult;
    let source: string;
    let against: string;
    if (exp) {
      res = await (await scorerFor(exp)).score(text, prompt);
      against = `${path.basename(path.dirname(exp.dir))} of run ${path.basename(path.dirname(path.dirname(path.dirname(exp.dir))))}`;
      source = `ONNX in the editor: ${against}`;
    } else {
      const done = await vscode.window.withProgress(
        { location: quiet ? vscode.ProgressLocation.Window : vscode.ProgressLocation.Notification, title: `GRPO: scoring ${path.basename(doc.uri.path)} with the trainer (${describeTarget(t)})…`, cancellable: true },
        (_p, token) => this.request(t, 'score', prompt ? { text, prompt } : { text }, token));
      res = onText(done.result, text);
      against = `${done.origin.checkpoint ? path.basename(done.origin.checkpoint) : `the live policy (step ${done.origin.step ?? '?'})`} of run ${path.basename(t.runDir)}`;
      source = `PyTorch via ${done.origin.checkpoint ? 'python -m grpo serve' : 'the live trainer'}: ${against}`;
    }
    if (doc.version !== version) return; // edited meanwhile: the next (throttled) pass scores it
    const ms = performance.now() - t0;
    this.shading.set(doc, fromScoreResult(res, `${source} vs its reference${ref ? ', as a continuation of the question' : ''}; sequence KL ${fmt(res.sequence_kl, 5)}`));
    this.log.info(`scored ${path.basename(doc.uri.path)}: ${res.tokens.length} tokens (${exp ? `ONNX, ${exp.dir}` : 'the trainer'}) in ${ms.toFixed(1)} ms (sequence KL ${fmt(res.sequence_kl, 5)})`);
    vscode.window.setStatusBarMessage(`GRPO: ${res.tokens.length} tokens scored against ${against} (${exp ? 'ONNX' : 'PyTorch'}) · sequence KL ${fmt(res.sequence_kl, 5)}`, 8000);
  }

  /** A scored document was edited: score it again once typing pauses (if it is still visible). */
  private rescoreSoon(doc: vscode.TextDocument): void {
    const key = doc.uri.toString();
    const t = this.autoRescore.get(key);
    if (!t || completionRef(doc.uri)) return; // a completion document is re-scored by ./rescore.ts
    clearTimeout(this.rescoreTimers.get(key));
    this.rescoreTimers.set(key, setTimeout(() => {
      this.rescoreTimers.delete(key);
      const ed = vscode.window.visibleTextEditors.find((e) => e.document === doc);
      if (!ed) return;
      this.scoreEditor(ed, t, true).catch((e) => this.log.warn(`re-scoring ${doc.uri.toString(true)}: ${(e as Error).message}`));
    }, 500));
  }

  toggleShading(): void {
    const r = this.shading.toggle();
    vscode.window.setStatusBarMessage(`GRPO: token shading by ${r.mode === 'kl' ? 'KL' : 'advantage'}`, 4000);
    if (r.note) void vscode.window.showInformationMessage(`GRPO: ${r.note}.`);
  }

  dispose(): void {
    clearInterval(this.reaper);
    this.rescoreTimers.forEach((t) => clearTimeout(t));
    this.serves.forEach((s) => s.dispose());
    this.serves.clear();
    this.subs.forEach((d) => d.dispose());
  }
}

/** One completion of `group`, by its reward, advantage, length and first words. */
function pickCompletion(group: GroupRecord, title: string): Thenable<{ i: number } | undefined> {
  return vscode.window.showQuickPick(group.completions.map((c, i) => ({
    label: `#${i}  reward ${fmt(group.rewards[i], 3)}  advantage ${fmt(group.advantages[i], 3)}`,
    description: `${describeLength(completionLength(group, i))}${group.truncated?.[i] ? ', truncated' : ''}`,
    detail: c.replace(/\n/g, ' ↵ ').slice(0, 120),
    i,
  })), { title, matchOnDetail: true });
}

function raceCancel<T>(p: Promise<T>, token: vscode.CancellationToken): Promise<T> {
  if (token.isCancellationRequested) return Promise.reject(new vscode.CancellationError());
  return new Promise<T>((resolve, reject) => {
    const sub = token.onCancellationRequested(() => {
      sub.dispose();
      reject(new vscode.CancellationError());
    });
    p.then((v) => (sub.dispose(), resolve(v)), (e) => (sub.dispose(), reject(e)));
  });
}

const clip = (s: string) => (s.length > 40 ? `${s.slice(0, 40)}…` : s);
const describeTarget = (t: Target) => (t.checkpoint ? `${path.basename(t.checkpoint)} of ${path.basename(t.runDir)}` : `run ${path.basename(t.runDir)}`);
const describeOrigin = (o: GroupOrigin) => (o.checkpoint ? path.basename(o.checkpoint) : o.logged ? `training step ${o.step}` : `live trainer, step ${o.step ?? '?'}`);

