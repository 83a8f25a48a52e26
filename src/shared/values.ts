/**
 * Per-token numbers and how they are shown: quantities derived from a completion's token arrays, the
 * colour scale, sorting a group's rows, and mapping tokens to character ranges. Pure functions, no
 * `vscode`, no DOM: shared by the extension host (editor shading, hovers) and the webviews (heatmap,
 * inspector), and unit-tested directly.
 */
import { oneOf } from './guards';
import type { GroupRecord, TokenArrays } from './records';

/** What a token heatmap can be coloured by. `ratio` is π_θ/π_old; `logp_diff` is log π_θ − log π_ref. */
export const QUANTITIES = ['advantage', 'ratio', 'kl', 'logp', 'entropy', 'logp_diff'] as const;
export type Quantity = (typeof QUANTITIES)[number];
export const isQuantity = oneOf(...QUANTITIES);

/** Schulman's k3 estimator of KL(π_θ‖π_ref) for one token: r − log r − 1 with r = π_ref/π_θ (always ≥ 0). */
export function k3(logp: number, refLogp: number): number {
  const d = refLogp - logp;
  return Math.exp(d) - d - 1;
}

/** The values of `q` for every token of one completion. `ratio` is π_θ/π_old, `logp_diff` log π_θ − log π_ref. */
export function quantityValues(t: Pick<TokenArrays, 'logp' | 'old_logp' | 'ref_logp' | 'kl' | 'advantage' | 'entropy'>, q: Quantity): number[] {
  switch (q) {
    case 'advantage': return t.advantage;
    case 'kl': return t.kl;
    case 'logp': return t.logp;
    case 'entropy': return t.entropy;
    case 'ratio': return t.logp.map((lp, i) => Math.exp(lp - t.old_logp[i]));
    case 'logp_diff': return t.logp.map((lp, i) => lp - t.ref_logp[i]);
  }
}

export const QUANTITY_LABEL: Record<Quantity, string> = {
  advantage: 'advantage Â',
  ratio: 'ratio π_θ/π_old',
  kl: 'k3 KL to the reference',
  logp: 'log-prob log π_θ',
  entropy: 'entropy',
  logp_diff: 'log π_θ − log π_ref',
};

// --- Colour scale -------------------------------------------------------------------------------------

/** Levels per sign: a value maps to a bucket in [−LEVELS, LEVELS] (0 = no colour). */
export const LEVELS = 8;

export interface Scale {
  quantity: Quantity;
  /** diverging: coloured by sign around `center`; sequential: by magnitude from `center`. */
  kind: 'diverging' | 'sequential';
  center: number;
  /** The distance from `center` that gets full colour (in log space for `ratio`). */
  span: number;
}

const DIVERGING: ReadonlySet<Quantity> = new Set(['advantage', 'ratio', 'logp_diff']);

/** Distance of `v` from the scale's centre (signed); `ratio` is measured as log ratio. */
function distance(q: Quantity, v: number, center: number): number {
  if (q === 'ratio') return Math.log(Math.max(v, 1e-12)) - Math.log(center);
  return v - center;
}

/**
 * A scale for a set of values (one completion, a group, a document): full colour at the largest
 * distance from the centre (advantage, logp_diff: 0; ratio: 1; kl, entropy: 0; logp: 0, more negative
 * = more surprising = stronger). A set with no spread gets a tiny span so that nothing divides by zero.
 */
export function scaleFor(q: Quantity, values: Iterable<number>): Scale {
  const center = q === 'ratio' ? 1 : 0;
  let span = 0;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    const d = Math.abs(distance(q, v, center));
    if (d > span) span = d;
  }
  return { quantity: q, kind: DIVERGING.has(q) ? 'diverging' : 'sequential', center, span: Math.max(span, 1e-9) };
}

/** The bucket of one value: sign × ceil(|d| / span × LEVELS), clamped; 0 only for (near) zero distance. */
export function bucketOf(v: number, s: Scale): number {
  if (!Number.isFinite(v)) return 0;
  const d = distance(s.quantity, v, s.center);
  const x = Math.min(1, Math.abs(d) / s.span);
  const level = x < 1e-6 ? 0 : Math.max(1, Math.ceil(x * LEVELS));
  if (s.kind === 'sequential') return level;
  return d < 0 ? -level : level;
}

/**
 * The colour of a bucket, as an rgba() that reads on dark and light themes (a hue with growing alpha).
 * Diverging: positive green (reinforced, above the centre), negative red (suppressed). Sequential:
 * orange for KL and entropy, purple for log-prob surprise.
 */
export function bucketColour(bucket: number, q: Quantity): string {
  if (bucket === 0) return 'transparent';
  const a = (0.12 + 0.6 * (Math.abs(bucket) / LEVELS)).toFixed(3);
  if (DIVERGING.has(q)) return bucket > 0 ? `rgba(40, 180, 90, ${a})` : `rgba(230, 60, 60, ${a})`;
  if (q === 'logp') return `rgba(150, 90, 220, ${a})`;
  return `rgba(240, 140, 20, ${a})`;
}

// --- Group rows ------------------------------------------------------------------------------------------

export const SORT_KEYS = ['index', 'reward', 'advantage', 'length', 'truncated', 'correct'] as const;
export type SortKey = (typeof SORT_KEYS)[number];

/**
 * A completion's length as shown and sorted: its tokens, or in a sequence-level group (no `tokens`, e.g.
 * imported from TRL's completion tables) its characters.
 */
export function completionLength(g: GroupRecord, i: number): { n: number; unit: 'tokens' | 'characters' } {
  return g.tokens ? { n: g.tokens[i].text.length, unit: 'tokens' } : { n: g.completions[i].length, unit: 'characters' };
}

/** "12 tokens", "1 character". */
export function describeLength(l: { n: number; unit: 'tokens' | 'characters' }): string {
  return `${l.n} ${l.n === 1 ? l.unit.slice(0, -1) : l.unit}`;
}

export function rowValue(g: GroupRecord, i: number, key: SortKey): number {
  switch (key) {
    case 'index': return i;
    case 'reward': return g.rewards[i];
    case 'advantage': return g.advantages[i];
    case 'length': return completionLength(g, i).n;
    case 'truncated': return g.truncated?.[i] ? 1 : 0;
    case 'correct': return g.correct?.[i] ? 1 : 0;
  }
}

/** Completion indices ordered by `key` (stable: ties keep index order, whichever direction). */
export function sortRows(g: GroupRecord, key: SortKey, descending: boolean): number[] {
  const idx = g.completions.map((_, i) => i);
  return idx.sort((a, b) => {
    const d = rowValue(g, a, key) - rowValue(g, b, key);
    return (descending ? -d : d) || a - b;
  });
}

/** For process supervision: the reasoning step (0-based) each token belongs to, from `step_ends`. */
export function stepOfTokens(n: number, stepEnds: readonly number[] | undefined): number[] | null {
  if (!stepEnds || stepEnds.length === 0) return null;
  const out = new Array<number>(n);
  let j = 0;
  for (let t = 0; t < n; t++) {
    while (j < stepEnds.length - 1 && t > stepEnds[j]) j++;
    out[t] = t > stepEnds[stepEnds.length - 1] ? -1 : j;
  }
  return out;
}

// --- Tokens ↔ characters ------------------------------------------------------------------------------

/**
 * Character ranges of `tokens` within `text`, walking left to right. A token that does not appear at the
 * current position (EOS, a special token) gets an empty range there. Returns null when the tokens do not
 * spell the text (a tokenizer whose token strings are not plain text, e.g. byte-level BPE).
 */
export function alignTokens(text: string, tokens: readonly string[], specials: ReadonlySet<string> = new Set()): [number, number][] | null {
  const out: [number, number][] = [];
  let pos = 0;
  for (const tok of tokens) {
    if (tok.length > 0 && text.startsWith(tok, pos)) {
      out.push([pos, pos + tok.length]);
      pos += tok.length;
    } else if (specials.has(tok) || tok.length === 0) {
      out.push([pos, pos]);
    } else return null;
  }
  return pos === text.length ? out : null;
}

/** The token whose range holds character `offset` (binary search over sorted ranges); −1 when none. */
export function tokenAt(offsets: readonly (readonly [number, number])[], offset: number): number {
  let lo = 0;
  let hi = offsets.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const [s, e] = offsets[mid];
    if (offset < s) hi = mid - 1;
    else if (offset >= e) lo = mid + 1;
    else return mid;
  }
  return -1;
}

/** How a token looks in a label: whitespace made visible. */
export function visibleToken(t: string): string {
  return t.replace(/\n/g, '↵').replace(/\t/g, '⇥').replace(/ /g, '·');
}

/** A number for humans: 4 significant decimals, exponent for tiny values. */
export function fmt(v: number | null | undefined, digits = 4): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  if (v !== 0 && Math.abs(v) < 1e-3) return v.toExponential(2);
  return v.toFixed(digits);
}
