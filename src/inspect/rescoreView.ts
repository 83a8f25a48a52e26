/**
 * "Edit a completion, see it re-scored" — the pure parts. A completion opened from a group keeps who it is
 * (its question, its place in the group, the group's texts and what the group logged for it); each edit
 * becomes a `rescore` request (docs/run-directory.md), whose answer becomes the lines above the text (reward
 * and advantage against what was logged, the group's advantages recomputed, step rewards) and the
 * per-token scores the shading and the hover read. No `vscode`.
 */
import type { RescoreParams, RescoreResult } from '../shared/records';
import { stepOfTokens } from '../shared/values';
import { utf16Offsets, type DocScores } from './docScores';

/** What a completion document knows about the completion it was opened from (its URI carries it). */
export interface RescoreIdentity {
  question: string;
  index: number;
  /** the group's completions as sampled (the edited one among them at `index`), when opened from a group */
  group?: string[];
  /** the answer the group was rewarded against (null: none known) */
  answer?: string | null;
  /** what the group logged, before any edit */
  rewards?: number[];
  advantages?: number[];
  stepRewards?: number[] | null;
  /** logged by training (samples.jsonl) at `step`, rather than sampled on request */
  logged?: boolean;
  step: number | null;
}

/** The `rescore` request for the document's current text. */
export function rescoreParams(id: RescoreIdentity, text: string): RescoreParams {
  const p: RescoreParams = { question: id.question, completion: text };
  if (id.group && id.group.length >= 2 && id.index >= 0 && id.index < id.group.length) {
    p.group = id.group;
    p.index = id.index;
  }
  if (typeof id.answer === 'string') p.answer = id.answer;
  return p;
}

/** What the lines above the text show: the logged numbers (nothing edited yet), a request under way (with
 * the last answer, if any), the answer for the current text, or why there is none. */
export type LensState =
  | { kind: 'logged' }
  | { kind: 'pending'; last: RescoreResult | null }
  | { kind: 'result'; result: RescoreResult }
  | { kind: 'error'; message: string };

const MINUS = '\u2212';
/** 2 decimals, a real minus sign; `signed`: a plus sign too (advantages). */
export function num(v: number | null | undefined, signed = false): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  const r = Math.round(v * 100) / 100;
  const s = Math.abs(r).toFixed(2);
  if (r === 0) return s;
  return r < 0 ? `${MINUS}${s}` : signed ? `+${s}` : s;
}

const MAX_GROUP_SHOWN = 16;

/** The group's advantages, the edited one in brackets (long groups: the first 16, then how many more). */
export function groupLine(advantages: readonly number[], index: number): string {
  const shown = advantages.slice(0, MAX_GROUP_SHOWN).map((a, i) => (i === index ? `[${num(a, true)}]` : num(a, true)));
  if (index >= MAX_GROUP_SHOWN && index < advantages.length) shown.push(`… [#${index} ${num(advantages[index], true)}]`);
  const more = advantages.length - MAX_GROUP_SHOWN - (index >= MAX_GROUP_SHOWN ? 1 : 0);
  return `group advantages ${shown.join(' ')}${more > 0 ? ` … (+${more})` : ''}`;
}

/** Step rewards as ✓ (≥ 1), ✗ (≤ 0) or the number, numbered from 1. */
export function stepsLine(stepRewards: readonly number[]): string {
  return `steps ${stepRewards.map((r, i) => `${i + 1}${r >= 1 ? '✓' : r <= 0 ? '✗' : `:${num(r)}`}`).join(' ')}`;
}

const was = (v: number | undefined, signed = false) => (v === undefined ? '' : ` (was ${num(v, signed)})`);

/** The CodeLens titles, first line of the document, left to right (what scored it: the hover's last line). */
export function lensTitles(id: RescoreIdentity, state: LensState): string[] {
  const loggedReward = id.rewards?.[id.index];
  const loggedAdvantage = id.advantages?.[id.index];
  const logged = () => {
    if (loggedReward === undefined) return ['GRPO: edit the text to re-score it with the run\'s reward function'];
    const where = id.logged ? `logged at step ${id.step ?? '?'}` : 'as sampled';
    const lines = [`GRPO reward ${num(loggedReward)} · advantage ${num(loggedAdvantage, true)} (${where})`];
    if (id.stepRewards?.length) lines.push(stepsLine(id.stepRewards));
    lines.push('edit the text to re-score it');
    return lines;
  };
  const result = (r: RescoreResult) => {
    const lines = [`GRPO reward ${num(r.reward)}${was(loggedReward)} · advantage ${num(r.advantage, true)}${was(loggedAdvantage, true)} · ${r.correct ? 'right ✓' : 'wrong ✗'}`];
    if (r.advantages.length > 1) lines.push(groupLine(r.advantages, r.index));
    if (r.step_rewards?.length) lines.push(stepsLine(r.step_rewards));
    return lines;
  };
  switch (state.kind) {
    case 'logged':
      return logged();
    case 'pending':
      return ['$(sync~spin) re-scoring…', ...(state.last ? result(state.last).slice(0, 1) : [])];
    case 'result': {
      const lines = result(state.result);
      if (state.result.reward_errors?.length) lines.push(`reward function failed: ${state.result.reward_errors[0]}`);
      if (state.result.note) lines.push(state.result.note);
      return lines;
    }
    case 'error':
      return [`$(warning) not re-scored: ${state.message}`];
  }
}

/** A `rescore` answer placed on the text it scored, for the shading and the hover: UTF-16 offsets, each
 * token as the text it covers, the token advantages, π_θ/π_ref, and each token's reasoning step. */
export function rescoredScores(r: RescoreResult, text: string, source: string): DocScores {
  const offsets = utf16Offsets(r.offsets, text);
  return {
    tokens: offsets.map(([a, b]) => text.slice(a, b)), offsets, logp: r.logp, refLogp: r.ref_logp, kl: r.kl, entropy: null,
    oldLogp: null, advantage: r.token_advantages, stepOf: stepOfTokens(r.tokens.length, r.step_ends), stepRewards: r.step_rewards ?? null,
    sequenceKl: r.sequence_kl, source, refRatio: r.ratio,
  };
}
