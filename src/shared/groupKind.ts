/**
 * A group's kind: whether its rewards differ (it carries policy gradient) or are all equal (every
 * advantage is 0: no signal), and then why. The trainer writes `kind` on each group it logs; older runs,
 * groups imported from TRL and groups sampled on request may lack it, and then it is derived here, once,
 * for every reader (the group inspector, the Runs view, the quick pick). Pure: no `vscode`, no DOM.
 */
import { GROUP_KINDS, type GroupKind, type GroupRecord } from './records';

export { GROUP_KINDS, type GroupKind };

/** Rewards closer than this (relative to their size, at least 1) count as equal: the group's sample std is
 * then 0 up to rounding, and its advantages are 0 (the trainer divides by std + eps). */
export const EQUAL_REWARDS_TOL = 1e-9;

export function rewardsEqual(rewards: readonly number[]): boolean {
  if (rewards.length === 0) return true;
  let lo = Infinity, hi = -Infinity;
  for (const r of rewards) {
    lo = Math.min(lo, r);
    hi = Math.max(hi, r);
  }
  return hi - lo <= EQUAL_REWARDS_TOL * Math.max(1, Math.abs(hi), Math.abs(lo));
}

/**
 * The kind of a group from its rewards (and `correct`, when it has it):
 *  - rewards differ → `mixed`;
 *  - rewards all equal, with `correct`: every answer right → `all_correct`, none → `all_wrong`, some →
 *    `no_signal_other` (a reward that ignores the answer);
 *  - rewards all equal, without `correct` (imported TRL groups, some sampled groups): the reward says it —
 *    ≥ 1 (every reward function here scores a right answer 1) → `all_correct`, ≤ 0 → `all_wrong`, anything
 *    between (a partial-credit reward) → `no_signal_other`.
 * An empty group has no signal and no answers: `no_signal_other`.
 */
export function deriveGroupKind(g: Pick<GroupRecord, 'rewards'> & { correct?: readonly boolean[] }): GroupKind {
  if (!rewardsEqual(g.rewards)) return 'mixed';
  if (g.rewards.length === 0) return 'no_signal_other';
  const c = g.correct;
  if (c && c.length === g.rewards.length) {
    const right = c.filter(Boolean).length;
    return right === c.length ? 'all_correct' : right === 0 ? 'all_wrong' : 'no_signal_other';
  }
  const r = g.rewards[0];
  return r >= 1 ? 'all_correct' : r <= 0 ? 'all_wrong' : 'no_signal_other';
}

export const isGroupKind = (v: unknown): v is GroupKind => typeof v === 'string' && (GROUP_KINDS as readonly string[]).includes(v);

/** The group's kind: the trainer's `kind` when it wrote one, else derived (deriveGroupKind). */
export function groupKind(g: Pick<GroupRecord, 'rewards'> & { correct?: readonly boolean[]; kind?: unknown }): GroupKind {
  return isGroupKind(g.kind) ? g.kind : deriveGroupKind(g);
}

/** Every kind but `mixed`: all rewards equal, all advantages 0, only the KL term acts on its tokens. */
export const hasNoSignal = (k: GroupKind): boolean => k !== 'mixed';

/** The badge's words. */
export const KIND_LABEL: Record<GroupKind, string> = {
  mixed: 'mixed',
  all_correct: 'all correct — no signal',
  all_wrong: 'all wrong — no signal',
  no_signal_other: 'equal rewards — no signal',
};

/** The badge's tooltip: what the kind means for training. */
export const KIND_TITLE: Record<GroupKind, string> = {
  mixed: 'rewards differ: the group carries policy gradient',
  all_correct: 'every completion is right and every reward equal: advantages are 0, so the group gives no policy gradient (only the KL term acts)',
  all_wrong: 'no completion is right and every reward equal: advantages are 0, so the group gives no policy gradient (only the KL term acts)',
  no_signal_other: 'every reward equal though the answers differ (a reward that ignores them): advantages are 0, no policy gradient',
};
