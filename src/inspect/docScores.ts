/**
 * The per-token scores of one document (a scored file, or a completion opened from a group), in the
 * form the editor needs: character ranges, values, what to shade with, and the hover for an offset.
 * Pure; no `vscode`. The editor layer caches one of these per document version.
 */
import type { GroupRecord, ScoreResult } from '../shared/records';
import { hoverMarkdown, type TokenFacts } from '../shared/hover';
import { alignTokens, bucketColour, bucketOf, scaleFor, stepOfTokens, tokenAt } from '../shared/values';

export type ShadeMode = 'kl' | 'advantage';

export interface DocScores {
  tokens: string[];
  offsets: [number, number][];
  logp: number[];
  refLogp: number[];
  kl: number[];
  entropy: number[] | null;
  oldLogp: number[] | null;
  advantage: number[] | null;
  stepOf: number[] | null;
  stepRewards: number[] | null;
  sequenceKl: number;
  /** Shown under each hover: where the numbers come from. */
  source: string;
  /** π_θ/π_ref per token, when the trainer sent it (a re-scored edit). */
  refRatio?: number[] | null;
}

export function fromScoreResult(r: ScoreResult, source: string): DocScores {
  return {
    tokens: r.tokens, offsets: r.offsets, logp: r.logp, refLogp: r.ref_logp, kl: r.kl, entropy: r.entropy,
    oldLogp: null, advantage: null, stepOf: null, stepRewards: null, sequenceKl: r.sequence_kl, source,
  };
}

/**
 * A `score` answer from the trainer placed on the text it scored: the trainer's offsets count Unicode code
 * points (Python's str), the editor's count UTF-16 code units, so they differ after any character beyond
 * U+FFFF; and `tokens` become the text each token covers (the trainer's are vocabulary entries such as
 * `Ġworld`), as the in-editor scorer reports them.
 */
export function onText(r: ScoreResult, text: string): ScoreResult {
  const offsets = utf16Offsets(r.offsets, text);
  return { ...r, offsets, tokens: offsets.map(([a, b]) => text.slice(a, b)) };
}

/** The trainer's `[start, end)` offsets (Unicode code points, Python's str) as offsets into `text` in UTF-16
 * code units (the editor's), clamped to the text. */
export function utf16Offsets(offsets: readonly (readonly [number, number])[], text: string): [number, number][] {
  const unit: number[] = [0]; // code point index → UTF-16 offset
  for (const ch of text) unit.push(unit[unit.length - 1] + ch.length);
  const at = (cp: number) => unit[Math.max(0, Math.min(cp, unit.length - 1))];
  return offsets.map(([a, b]): [number, number] => [at(a), at(b)]);
}

/**
 * The logged numbers of completion `i` of a group, placed on `text` (the completion). Returns null when
 * the group has no per-token arrays (a sequence-level group, e.g. imported from TRL's completion tables)
 * or its tokens do not spell the text: then the document is scored on demand (ONNX, or the trainer).
 */
export function fromGroup(g: GroupRecord, i: number, text: string, source: string): DocScores | null {
  const t = g.tokens?.[i];
  if (!t) return null;
  const offsets = alignTokens(text, t.text, new Set(['<eos>', '</s>', '<|endoftext|>', '<pad>']));
  if (!offsets) return null;
  const n = t.text.length;
  const mean = n ? t.kl.reduce((a, b) => a + b, 0) / n : 0;
  return {
    tokens: t.text, offsets, logp: t.logp, refLogp: t.ref_logp, kl: t.kl, entropy: t.entropy, oldLogp: t.old_logp, advantage: t.advantage,
    stepOf: stepOfTokens(n, g.step_ends?.[i]), stepRewards: g.step_rewards?.[i] ?? null, sequenceKl: mean, source,
  };
}

export function factsAt(s: DocScores, t: number): TokenFacts {
  const step = s.stepOf?.[t];
  return {
    token: s.tokens[t], index: t, count: s.tokens.length, logp: s.logp[t], refLogp: s.refLogp[t], kl: s.kl[t],
    oldLogp: s.oldLogp?.[t] ?? null, ratio: s.oldLogp ? Math.exp(s.logp[t] - s.oldLogp[t]) : null, refRatio: s.refRatio?.[t] ?? null,
    advantage: s.advantage?.[t] ?? null, entropy: s.entropy?.[t] ?? null,
    step: step === undefined ? null : { index: step < 0 ? (s.stepRewards?.length ?? 0) : step, reward: step < 0 ? null : s.stepRewards?.[step] ?? null },
  };
}

/** The hover for a character offset, from cached scores: its Markdown and the token's range. */
export function hoverAt(s: DocScores, offset: number): { markdown: string; range: [number, number] } | null {
  let t = tokenAt(s.offsets, offset);
  // At the very end of a token (cursor after it) VS Code asks for the position after the last char.
  if (t < 0 && offset > 0) t = tokenAt(s.offsets, offset - 1);
  if (t < 0) return null;
  return { markdown: hoverMarkdown(factsAt(s, t), s.source), range: s.offsets[t] };
}

/** Whether `mode` can shade this document (advantage needs a group). */
export function canShade(s: DocScores, mode: ShadeMode): boolean {
  return mode === 'kl' || s.advantage !== null;
}

/** Ranges to shade, grouped by colour: one decoration type per colour serves every document. */
export function shadingRuns(s: DocScores, mode: ShadeMode): Map<string, [number, number][]> {
  const values = mode === 'advantage' && s.advantage ? s.advantage : s.kl;
  const q = mode === 'advantage' && s.advantage ? 'advantage' : 'kl';
  const scale = scaleFor(q, values);
  const out = new Map<string, [number, number][]>();
  for (let t = 0; t < values.length; t++) {
    const [a, b] = s.offsets[t];
    if (a === b) continue;
    const bucket = bucketOf(values[t], scale);
    if (bucket === 0) continue;
    const c = bucketColour(bucket, q);
    let list = out.get(c);
    if (!list) out.set(c, (list = []));
    list.push([a, b]);
  }
  return out;
}
