/**
 * The signal ledger's data for the dashboard ("Where the signal went"), free of DOM and chart.js so it is
 * unit-tested in Node and benchmarked: per step, the trainer splits `ledger/tokens` (completion tokens
 * sampled) into disjoint categories that sum to it; this module turns them into shares, a stacked-area
 * series (bucketed to the chart's pixel width, incrementally, like the other charts' decimation), the
 * breakdown of one step, and a one-line summary in words.
 *
 * Absent is unknown, never 0: an older run has no ledger at all (no band, the breakdown says "not
 * recorded"), and a run imported from TRL may lack some categories; their tokens are drawn as one
 * "not recorded" band (ledger/tokens minus the categories that are there) and listed as "unknown".
 */
import type { Point, RunSeries } from './data';

/** A theme colour the page maps to VS Code's chart palette (`grey` is the foreground, faded). */
export type Tone = 'blue' | 'orange' | 'green' | 'purple' | 'red' | 'yellow' | 'grey';

export interface LedgerCategory {
  key: string;
  /** the legend's words */
  label: string;
  /** what it means (the legend's and the breakdown's tooltip) */
  title: string;
  tone: Tone;
  /** opacity of the band's fill */
  alpha: number;
  /** in a group with no signal (all rewards equal, or discarded by dynamic sampling) */
  noSignal?: boolean;
  /** dropped from the loss by a mask */
  masked?: boolean;
  clipped?: boolean;
}

export const LEDGER_TOKENS = 'ledger/tokens';

/** The categories in the trainer's order (a token counts in the first that holds; they sum to ledger/tokens). */
export const LEDGER_CATEGORIES: readonly LedgerCategory[] = [
  { key: 'ledger/filtered', label: 'discarded by dynamic sampling', title: 'in groups dynamic sampling sampled and discarded (no signal)', tone: 'grey', alpha: 0.35, noSignal: true },
  { key: 'ledger/truncated_masked', label: 'truncated, masked out', title: 'in truncated completions that mask_truncated_completions drops from the loss', tone: 'yellow', alpha: 0.55, masked: true },
  { key: 'ledger/no_signal_correct', label: 'all-correct groups (no signal)', title: 'in groups whose rewards are all equal and every answer is right: advantage 0, only the KL term acts', tone: 'blue', alpha: 0.55, noSignal: true },
  { key: 'ledger/no_signal_wrong', label: 'all-wrong groups (no signal)', title: 'in groups whose rewards are all equal and no answer is right: advantage 0, only the KL term acts', tone: 'red', alpha: 0.55, noSignal: true },
  { key: 'ledger/no_signal_other', label: 'other equal-reward groups (no signal)', title: 'in groups whose rewards are all equal though the answers differ (a reward that ignores them): advantage 0', tone: 'purple', alpha: 0.55, noSignal: true },
  { key: 'ledger/masked_other', label: 'masked (other)', title: 'masked by another token mask of the objective', tone: 'grey', alpha: 0.6, masked: true },
  { key: 'ledger/clipped_low', label: 'clipped: ratio < 1−ε, Â < 0', title: 'ratio below 1−ε with a negative advantage: clipped, no policy gradient', tone: 'orange', alpha: 0.45, clipped: true },
  { key: 'ledger/clipped_high', label: 'clipped: ratio > 1+ε, Â > 0', title: 'ratio above 1+ε_high with a positive advantage: clipped, no policy gradient', tone: 'orange', alpha: 0.8, clipped: true },
  { key: 'ledger/effective', label: 'carried policy gradient', title: 'tokens whose gradient reached the policy: unmasked, in a group whose rewards differ, not clipped', tone: 'green', alpha: 0.7 },
];

/** The band for categories a run did not record (ledger/tokens minus those it did). */
export const UNKNOWN_CATEGORY: LedgerCategory = {
  key: 'ledger/unknown', label: 'not recorded (unknown)', title: 'the run does not record these categories (e.g. imported from TRL): their tokens are not counted as 0', tone: 'grey', alpha: 0.15,
};

/** Bottom to top in the chart: what carried the signal sits on the axis, the not-recorded band on top. */
export const STACK_ORDER: readonly LedgerCategory[] = [...[...LEDGER_CATEGORIES].reverse(), UNKNOWN_CATEGORY];

export const GROUP_COUNTS = [
  { key: 'groups/mixed', label: 'mixed (carry signal)' },
  { key: 'groups/all_correct', label: 'all correct (no signal)' },
  { key: 'groups/all_wrong', label: 'all wrong (no signal)' },
  { key: 'groups/no_signal_other', label: 'other equal rewards (no signal)' },
  { key: 'groups/filtered', label: 'discarded by dynamic sampling' },
] as const;
export const GROUPS_SAMPLED = 'groups/sampled';

export const GRAD_BY_KIND = [
  { key: 'grad_share/mixed', label: 'mixed groups' },
  { key: 'grad_share/all_correct', label: 'all-correct groups (KL only)' },
  { key: 'grad_share/all_wrong', label: 'all-wrong groups (KL only)' },
  { key: 'grad_share/no_signal_other', label: 'other equal-reward groups (KL only)' },
] as const;
export const GRAD_BY_LENGTH = [
  { key: 'grad_share/len_0_25', label: 'tokens 0–25% into the completion' },
  { key: 'grad_share/len_25_50', label: '25–50%' },
  { key: 'grad_share/len_50_75', label: '50–75%' },
  { key: 'grad_share/len_75_100', label: '75–100%' },
] as const;

/** Reads one step's number by key; null or undefined = not recorded. */
export type Getter = (key: string) => number | null | undefined;

const known = (v: number | null | undefined): v is number => typeof v === 'number' && Number.isFinite(v);

export interface Part {
  key: string;
  label: string;
  title?: string;
  /** null: not recorded (unknown) */
  value: number | null;
  /** value / total; null when either is unknown */
  share: number | null;
}

export interface LedgerBreakdown {
  step: number;
  /** ledger/tokens; null: this step has no ledger (an older run) */
  tokens: number | null;
  /** in LEDGER_CATEGORIES order; `value` null = the run does not record it */
  categories: Part[];
  /** tokens not accounted for by the recorded categories, when some are not recorded; else null */
  unknown: Part | null;
  groups: Part[];
  /** groups/sampled (null: unknown) */
  sampled: number | null;
  gradByKind: Part[];
  gradByLength: Part[];
}

/** One step's ledger: token categories with counts and shares of ledger/tokens, groups by kind (shares of
 * groups/sampled), and the gradient's shares by group kind and by position in the completion. */
export function breakdownOf(step: number, get: Getter): LedgerBreakdown {
  const t = get(LEDGER_TOKENS);
  const tokens = known(t) && t > 0 ? t : null;
  const share = (v: number | null, of: number | null) => (v === null || of === null || of <= 0 ? null : v / of);
  const categories = LEDGER_CATEGORIES.map((c): Part => {
    const v = get(c.key);
    const value = tokens !== null && known(v) ? v : null;
    return { key: c.key, label: c.label, title: c.title, value, share: share(value, tokens) };
  });
  let unknown: Part | null = null;
  if (tokens !== null && categories.some((p) => p.value === null)) {
    const rest = Math.max(0, tokens - categories.reduce((s, p) => s + (p.value ?? 0), 0));
    unknown = { key: UNKNOWN_CATEGORY.key, label: UNKNOWN_CATEGORY.label, title: UNKNOWN_CATEGORY.title, value: rest, share: rest / tokens };
  }
  const s = get(GROUPS_SAMPLED);
  const sampled = known(s) ? s : null;
  const groups = GROUP_COUNTS.map((g): Part => {
    const v = get(g.key);
    const value = known(v) ? v : null;
    return { key: g.key, label: g.label, value, share: share(value, sampled) };
  });
  const grad = (defs: readonly { key: string; label: string }[]) => defs.map((g): Part => {
    const v = get(g.key);
    const value = known(v) ? v : null;
    return { key: g.key, label: g.label, value, share: value };
  });
  return { step, tokens, categories, unknown, groups, sampled, gradByKind: grad(GRAD_BY_KIND), gradByLength: grad(GRAD_BY_LENGTH) };
}

/** The breakdown of row `i` of a run. */
export function breakdownAt(run: RunSeries, i: number): LedgerBreakdown {
  return breakdownOf(run.step[i], (k) => run.get(k)?.[i]);
}

/** The index of the row nearest step `x` that has a ledger (ledger/tokens), or -1 when none has. */
export function nearestLedgerRow(run: RunSeries, x: number): number {
  const tokens = run.get(LEDGER_TOKENS);
  const steps = run.step;
  if (!tokens || steps.length === 0) return -1;
  let lo = 0, hi = steps.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (steps[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  const has = (i: number) => i >= 0 && i < steps.length && known(tokens[i]) && (tokens[i] as number) > 0;
  // the nearest of the two neighbours with a ledger, searching outwards
  for (let d = 0; d < steps.length; d++) {
    const a = lo - d, b = lo + d, c = lo - 1 - d;
    const cands = [a, b, c].filter(has);
    if (cands.length) return cands.reduce((best, i) => (Math.abs(steps[i] - x) < Math.abs(steps[best] - x) ? i : best));
    if (a < 0 && c < 0 && b >= steps.length) break;
  }
  return -1;
}

/** The last row with a ledger, or -1. */
export function lastLedgerRow(run: RunSeries): number {
  const tokens = run.get(LEDGER_TOKENS);
  if (!tokens) return -1;
  for (let i = tokens.length - 1; i >= 0; i--) if (known(tokens[i]) && (tokens[i] as number) > 0) return i;
  return -1;
}

/** A share in words: whole percents from 10% to 99%, one decimal below 10% and above 99% (so 99.6% is not
 * called 100%), no trailing ".0". */
export const formatShare = (x: number): string => {
  const v = x * 100;
  return `${(v >= 10 && v <= 99) || v === 0 || v === 100 ? Math.round(v) : v > 99 ? Math.min(99.9, Number(v.toFixed(1))) : Number(v.toFixed(1))}%`;
};
export const formatCount = (n: number): string => (Number.isInteger(n) ? n.toLocaleString('en-US') : n.toLocaleString('en-US', { maximumFractionDigits: 1 }));

/**
 * One line in plain words: "Step 12: 81% of this step's 4,096 tokens carried no signal: 62% in all-wrong
 * groups, 19% in all-correct groups. 3% were clipped; 16% carried policy gradient."
 */
export function summarize(b: LedgerBreakdown): string {
  if (b.tokens === null) return `Step ${b.step}: the signal ledger was not recorded (a run from before it, or one that does not record it).`;
  const part = (key: string) => b.categories.find((p) => p.key === `ledger/${key}`)!;
  const where: [string, Part][] = [
    ['in all-wrong groups', part('no_signal_wrong')],
    ['in all-correct groups', part('no_signal_correct')],
    ['in other equal-reward groups', part('no_signal_other')],
    ['discarded by dynamic sampling', part('filtered')],
  ];
  const noSig = where.filter(([, p]) => p.share !== null && p.share > 0).sort((x, y) => (y[1].share ?? 0) - (x[1].share ?? 0));
  const noSigTotal = noSig.reduce((s, [, p]) => s + (p.share ?? 0), 0);
  const sum = (pred: (c: LedgerCategory) => boolean | undefined) => {
    const ps = LEDGER_CATEGORIES.filter(pred).map((c) => part(c.key.slice('ledger/'.length)));
    return ps.every((p) => p.share === null) ? null : ps.reduce((s, p) => s + (p.share ?? 0), 0);
  };
  const masked = sum((c) => c.masked);
  const clipped = sum((c) => c.clipped);
  const eff = part('effective').share;
  const head = `Step ${b.step}: `;
  const first = noSig.length
    ? `${formatShare(noSigTotal)} of this step's ${formatCount(b.tokens)} tokens carried no signal: ${noSig.map(([w, p]) => `${formatShare(p.share!)} ${w}`).join(', ')}.`
    : where.every(([, p]) => p.share === null)
      ? `of this step's ${formatCount(b.tokens)} tokens, the no-signal groups are not recorded.`
      : `none of this step's ${formatCount(b.tokens)} tokens was in a group without signal.`;
  const rest: string[] = [];
  if (masked !== null && masked > 0) rest.push(`${formatShare(masked)} were masked`);
  if (clipped !== null && clipped > 0) rest.push(`${formatShare(clipped)} were clipped`);
  rest.push(eff === null ? 'the tokens that carried policy gradient are not recorded' : `${formatShare(eff)} carried policy gradient`);
  if (b.unknown && b.unknown.share !== null && b.unknown.share > 0) rest.push(`${formatShare(b.unknown.share)} are in categories not recorded`);
  const sentence = rest.join('; ');
  return `${head}${noSig.length ? first : first.charAt(0).toUpperCase() + first.slice(1)} ${sentence.charAt(0).toUpperCase()}${sentence.slice(1)}.`;
}

// ---------------------------------------------------------------------------------------------------
// The stacked areas, bucketed

/** One bucket of steps: summed tokens per band (STACK_ORDER) and their steps' mean. */
interface Bucket { x: number; tokens: number; parts: number[] }

/** The chart's bands: for each of STACK_ORDER (bottom to top), the upper edge as a cumulative share. */
export interface StackedBands {
  bands: Point[][];
  /** which of STACK_ORDER have any tokens (bands without are left out of the legend) */
  present: boolean[];
  /** the buckets drawn (= points per band) */
  buckets: number;
}

/**
 * The stacked shares of a run, bucketed to at most ~`buckets` buckets across its steps. A bucket's share of a
 * category is its tokens over the bucket's tokens (token-weighted, so shares stay disjoint and sum to 1
 * however many steps a bucket holds; min/max decimation would not keep that). Every band has the same x
 * points, so each band fills to the one below it. Incremental as in Decimator: the bucket width is a power
 * of two, fixed until the run outgrows it, and only the last, still-open bucket is recomputed as steps
 * arrive (O(new rows) per redraw on a 100,000-step run).
 */
export class LedgerStack {
  private width = 0;
  private x0 = NaN;
  private nb = 0;
  private done: Bucket[] = [];
  /** the first row of the open bucket: where the next update resumes */
  private resume = 0;

  update(run: RunSeries, buckets: number): StackedBands | null {
    const tokens = run.get(LEDGER_TOKENS);
    const xs = run.step;
    const n = Math.min(xs.length, tokens?.length ?? 0);
    if (!tokens || n === 0) return null;
    const x0 = xs[0];
    let width = 1;
    while (width * buckets < xs[n - 1] - x0) width *= 2;
    if (width !== this.width || x0 !== this.x0 || buckets !== this.nb || run.dirtyFrom < this.resume) {
      this.width = width;
      this.x0 = x0;
      this.nb = buckets;
      this.done = [];
      this.resume = 0;
    }
    const cols = STACK_ORDER.map((c) => run.get(c.key));
    const unknownAt = STACK_ORDER.length - 1;
    let open: Bucket | null = null;
    let openStart = this.resume;
    let bucket = -1;
    let sx = 0, rows = 0;
    const close = (into: Bucket[]) => {
      if (open && open.tokens > 0) {
        open.x = sx / rows;
        into.push(open);
      }
    };
    for (let i = this.resume; i < n; i++) {
      const t = tokens[i];
      if (!known(t) || t <= 0) continue;
      const b = Math.floor((xs[i] - x0) / width);
      if (b !== bucket) {
        close(this.done);
        bucket = b;
        openStart = i;
        open = { x: 0, tokens: 0, parts: new Array<number>(STACK_ORDER.length).fill(0) };
        sx = 0;
        rows = 0;
      }
      const o = open!;
      o.tokens += t;
      sx += xs[i];
      rows++;
      let sum = 0, missing = false;
      for (let k = 0; k < unknownAt; k++) {
        const v = cols[k]?.[i];
        if (known(v)) {
          o.parts[k] += v;
          sum += v;
        } else missing = true;
      }
      if (missing) o.parts[unknownAt] += Math.max(0, t - sum);
    }
    const tail: Bucket[] = [];
    close(tail);
    this.resume = openStart;
    const all = this.done.concat(tail);
    const present = STACK_ORDER.map((_, k) => all.some((b) => b.parts[k] > 0));
    const bands = STACK_ORDER.map(() => new Array<Point>(all.length));
    for (let j = 0; j < all.length; j++) {
      const b = all[j];
      let acc = 0;
      for (let k = 0; k < STACK_ORDER.length; k++) {
        acc += b.parts[k] / b.tokens;
        bands[k][j] = { x: b.x, y: Math.min(1, acc) };
      }
    }
    return { bands, present, buckets: all.length };
  }
}
