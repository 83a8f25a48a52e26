/**
 * What the What-if view draws, from a replay result, free of the DOM so it is unit-tested in Node: the
 * columns (the run's own settings first, then each alternative), the rows (completions) ordered by |Δ| of a
 * chosen column, the shared diverging colour scale of Δ log π, the one-line signal-ledger summary per column
 * (the dashboard's ledger categories, names and colours: ../dashboard/ledger.ts), the "reproduced" line, and
 * a token's hover text.
 */
import type { ReplayResult, ReplayVariant } from '../../src/shared/records';
import { presetOf, describeSettings } from '../../src/inspect/whatifProtocol';
import { fmt, visibleToken, type Scale } from '../../src/shared/values';
import { breakdownOf, formatShare, LEDGER_CATEGORIES, type LedgerCategory, type Tone } from '../dashboard/ledger';

export interface Column {
  /** index into result.variants */
  variant: number;
  isRun: boolean;
  /** the column's head: "this run" or the preset's short name or the settings */
  label: string;
  /** the settings in TRL's words ("loss_type=dr_grpo"); the run's: "its own settings" */
  detail: string;
}

const isRunVariant = (v: ReplayVariant) => v.name === 'run' || Object.keys(v.settings).length === 0;

/** The run's own settings first (the trainer sends them first; this keeps it so), then the alternatives. */
export function columnsOf(r: ReplayResult): Column[] {
  const cols = r.variants.map((v, i): Column => {
    if (isRunVariant(v)) return { variant: i, isRun: true, label: 'this run', detail: 'the run\'s own settings' };
    const p = presetOf(v.settings);
    const detail = Object.keys(v.settings).length ? describeSettings(v.settings) : v.name;
    return { variant: i, isRun: false, label: p?.short ?? detail, detail };
  });
  return [...cols.filter((c) => c.isRun), ...cols.filter((c) => !c.isRun)];
}

/** The column rows are sorted by at first: the first alternative, or the run's when there is none. */
export function defaultSortColumn(cols: readonly Column[]): number {
  const alt = cols.findIndex((c) => !c.isRun);
  return alt >= 0 ? alt : 0;
}

/** How rows are ordered: by |Δ seq| of a column (largest first), or as the batch holds them. */
export type RowOrder = { by: 'delta'; column: number } | { by: 'index' };

/** Completion indices in display order. Ties (and values that are not numbers) keep the batch's order. */
export function rowOrder(r: ReplayResult, cols: readonly Column[], order: RowOrder): number[] {
  const idx = r.completions.map((_, i) => i);
  if (order.by === 'index') return idx;
  const v = r.variants[cols[order.column]?.variant ?? -1];
  if (!v) return idx;
  const mag = (i: number) => {
    const d = v.delta_seq[i];
    return typeof d === 'number' && Number.isFinite(d) ? Math.abs(d) : -1;
  };
  return idx.sort((a, b) => mag(b) - mag(a) || a - b);
}

/**
 * The diverging colour scale of Δ log π: centre 0, full colour at the `q` quantile of |Δ| (default the 98th
 * percentile), so that a few outlier tokens do not wash every other token out; beyond it, full colour.
 * The scale's quantity is `logp_diff` (a signed log-prob difference: green up, red down, as the heatmap
 * colours it). With no non-zero value the span is tiny and nothing is coloured.
 */
export function deltaScale(values: Iterable<number>, q = 0.98): Scale {
  const mags: number[] = [];
  for (const v of values) if (Number.isFinite(v) && v !== 0) mags.push(Math.abs(v));
  let span = 0;
  if (mags.length) {
    mags.sort((a, b) => a - b);
    span = mags[Math.min(mags.length - 1, Math.max(0, Math.ceil(q * mags.length) - 1))];
  }
  return { quantity: 'logp_diff', kind: 'diverging', center: 0, span: Math.max(span, 1e-9) };
}

/** Every Δ log π of the columns given (all tokens of all completions). */
export function* deltas(r: ReplayResult, cols: readonly Column[]): Generator<number> {
  for (const c of cols) for (const row of r.variants[c.variant].delta_logp) yield* row;
}

/** One completion's Δ log π in a column, one per token: missing values (a shorter array) are NaN (no colour). */
export function cellValues(r: ReplayResult, variant: number, completion: number): number[] {
  const n = r.completions[completion].tokens.length;
  const d = r.variants[variant].delta_logp[completion] ?? [];
  return Array.from({ length: n }, (_, t) => (typeof d[t] === 'number' ? d[t] : NaN));
}

/** Mean |Δ log π| over every token of a column: how far the update moves the policy, in one number. */
export function meanAbsDelta(v: ReplayVariant): number {
  let s = 0, n = 0;
  for (const row of v.delta_logp) for (const d of row) if (Number.isFinite(d)) {
    s += Math.abs(d);
    n++;
  }
  return n ? s / n : 0;
}

/** The largest |Δ seq| in the columns given (for the rows' magnitude bars). */
export function maxAbsSeq(r: ReplayResult, cols: readonly Column[]): number {
  let m = 0;
  for (const c of cols) for (const d of r.variants[c.variant].delta_seq) if (Number.isFinite(d)) m = Math.max(m, Math.abs(d));
  return m;
}

/** A signed number: "+0.0123", "−4.10e-4", "0". */
export function signed(v: number, digits = 4): string {
  if (!Number.isFinite(v)) return '–';
  if (v === 0) return '0';
  return (v > 0 ? '+' : '−') + fmt(Math.abs(v), digits);
}

// ---------------------------------------------------------------------------------------------------
// The signal ledger, in one line

export interface LedgerPart {
  /** the line's word */
  label: string;
  share: number;
  /** what it sums (the dashboard's category labels) */
  title: string;
  tone: Tone;
}

/** One band of a column's ledger bar: a dashboard category with its share, colour and opacity. */
export interface LedgerBand { category: LedgerCategory; share: number }

export interface LedgerLine {
  /** "effective 62% · clipped 3% · no signal 30%"; or why there is none */
  text: string;
  parts: LedgerPart[];
  /** the dashboard's categories with tokens, in its order (for the bar) */
  bands: LedgerBand[];
}

/**
 * A variant's ledger in one line: the share of the step's tokens that carried policy gradient, were clipped,
 * masked (only when some were), and sat in groups with no signal; the dashboard's categories, summed by its
 * own flags (clipped, masked, noSignal).
 */
export function ledgerLine(ledger: Record<string, number>, step = 0): LedgerLine {
  const b = breakdownOf(step, (k) => ledger[k]);
  if (b.tokens === null) return { text: 'signal ledger not recorded', parts: [], bands: [] };
  const bands = LEDGER_CATEGORIES.map((category, i) => ({ category, share: b.categories[i].share ?? 0 })).filter((x) => x.share > 0);
  const sum = (pred: (c: LedgerCategory) => boolean | undefined) => {
    const cs = LEDGER_CATEGORIES.map((c, i) => ({ c, p: b.categories[i] })).filter(({ c }) => pred(c));
    return {
      share: cs.reduce((s, { p }) => s + (p.share ?? 0), 0),
      known: cs.some(({ p }) => p.share !== null),
      title: cs.map(({ c }) => c.label).join(' + '),
    };
  };
  const parts: LedgerPart[] = [];
  const eff = sum((c) => c.key === 'ledger/effective');
  const clipped = sum((c) => c.clipped);
  const masked = sum((c) => c.masked);
  const noSignal = sum((c) => c.noSignal);
  if (eff.known) parts.push({ label: 'effective', share: eff.share, title: eff.title, tone: 'green' });
  if (clipped.known) parts.push({ label: 'clipped', share: clipped.share, title: clipped.title, tone: 'orange' });
  if (masked.known && masked.share > 0) parts.push({ label: 'masked', share: masked.share, title: masked.title, tone: 'yellow' });
  if (noSignal.known) parts.push({ label: 'no signal', share: noSignal.share, title: noSignal.title, tone: 'grey' });
  const text = parts.length ? parts.map((p) => `${p.label} ${formatShare(p.share)}`).join(' · ') : 'signal ledger: no category recorded';
  return { text, parts, bands };
}

// ---------------------------------------------------------------------------------------------------
// Trust, and the hover

/** Below this, the run's own replay counts as reproducing the logged step (float32 round-off). */
export const REPRODUCED_OK = 1e-4;

/** A small difference of log-probs: "0 (exact)", "3.0e-7", "0.0123". */
export function smallDiff(d: number): string {
  return d === 0 ? '0 (exact)' : d < 1e-3 ? d.toExponential(1) : fmt(d, 4);
}

/** "replay reproduces the logged step to 3.0e-7" (or by how much it misses), from the run's column. */
export function reproducedLine(r: ReplayResult): { text: string; ok: boolean } | null {
  const run = r.variants.find(isRunVariant);
  if (!run || typeof run.reproduced !== 'number' || !Number.isFinite(run.reproduced)) return null;
  const d = run.reproduced;
  const n = smallDiff(d);
  return d <= REPRODUCED_OK
    ? { text: `replay reproduces the logged step to ${n} (max |log π after − the logged log π after|)`, ok: true }
    : { text: `replay differs from the logged step by up to ${n} in log π (max over tokens): treat small differences between columns with care`, ok: false };
}

/** Two Δ log π count as equal within this, absolute plus relative: float32 round-off between two updates,
 * and the trainer's 6 significant digits. */
export const SAME_UPDATE = 1e-5;

/**
 * How far column `k`'s Δ log π is from the run's, token by token: the max |difference|, and whether every
 * token agrees within SAME_UPDATE (absolute + relative) — the variant then changes nothing for this batch
 * (e.g. GSPO with one update per batch, where every ratio is 1). Null for the run's own column, or when there
 * is none.
 */
export function diffFromRun(r: ReplayResult, cols: readonly Column[], k: number): { max: number; same: boolean } | null {
  const run = cols.find((c) => c.isRun);
  const here = cols[k];
  if (!run || !here || here.isRun) return null;
  const a = r.variants[run.variant].delta_logp, b = r.variants[here.variant].delta_logp;
  let max = 0;
  let same = true;
  for (let i = 0; i < a.length; i++) for (let t = 0; t < (a[i]?.length ?? 0); t++) {
    const x = a[i][t], y = b[i]?.[t] ?? NaN;
    const d = Math.abs(x - y);
    if (Number.isNaN(d)) continue;
    max = Math.max(max, d);
    if (d > SAME_UPDATE * (1 + Math.max(Math.abs(x), Math.abs(y)))) same = false;
  }
  return { max, same };
}

/** A token's hover: the token, its Δ in this column and in every other, the completion's advantage and reward. */
export function tokenTip(r: ReplayResult, cols: readonly Column[], col: number, completion: number, token: number): string {
  const c = r.completions[completion];
  const here = cols[col];
  if (!c || !here) return '';
  const q = r.questions[c.group] ?? '';
  const d = (k: number) => r.variants[cols[k].variant].delta_logp[completion]?.[token];
  const lines = [
    `'${visibleToken(c.tokens[token] ?? '')}' — token ${token + 1}/${c.tokens.length} of completion #${completion} (question ${c.group + 1}${q ? `: ${q.length > 60 ? `${q.slice(0, 60)}…` : q}` : ''})`,
    `Δ log π under ${here.isRun ? 'this run\'s settings' : here.detail}: ${signed(d(col) ?? NaN, 5)}`,
    ...cols.map((o, k) => (k === col ? null : `  under ${o.isRun ? 'this run\'s settings' : o.detail}: ${signed(d(k) ?? NaN, 5)}`)).filter((x): x is string => x !== null),
    `advantage Â ${signed(c.advantage, 4)} · reward ${fmt(c.reward, 3)}${c.truncated ? ' · truncated' : ''}`,
  ];
  return lines.join('\n');
}
