/**
 * The dashboard's data handling, free of DOM and chart.js so it is unit-tested in Node and benchmarked:
 * per-run columnar series, EMA smoothing (TensorBoard's debiased form, extended incrementally as steps
 * arrive), and min/max decimation to a pixel budget so a 100,000-step run draws as fast as a short one.
 */
import type { MetricsColumns } from '../../src/dashboard/columns';
import { componentKey, componentNames, divergence, describeDivergence } from '../../src/shared/components';

/**
 * One line of a chart. `sparse`: values only on some steps (evaluations): point markers, never smoothed.
 * `color`: an index into the theme's chart palette (default: the series' position); `dashed`: a dashed line
 * (pass@k against maj@k's solid one at the same k's colour).
 */
export interface SeriesDef { key: string; label: string; band?: string; sparse?: boolean; color?: number; dashed?: boolean }
/** `sparse`: every series of the chart is sparse. `nonNegative`: the values cannot be below 0 (fractions,
 * KL, lengths, times), so the y axis starts at 0 (left to chart.js, an all-zero series gets −1…1).
 * `components`: the series are found in the data, one per reward function (`rewards/<name>/mean`); `series`
 * is then empty and `chartSeries` lists them. */
export interface ChartDef { id: string; title: string; series: SeriesDef[]; percent?: boolean; sparse?: boolean; nonNegative?: boolean; components?: boolean }

/** The k of pass@k / maj@k charted (the trainer's default `eval_k`; k = 1 of both is the sampled accuracy). */
export const EVAL_K = [1, 4, 8, 16] as const;

export const CHARTS: ChartDef[] = [
  { id: 'reward', title: 'Reward (mean ± std)', series: [{ key: 'reward/mean', label: 'reward', band: 'reward/std' }] },
  { id: 'components', title: 'Reward components (mean per reward function)', components: true, series: [] },
  { id: 'accuracy', title: 'Accuracy', nonNegative: true, series: [{ key: 'accuracy', label: 'train' }, { key: 'eval/accuracy', label: 'eval (greedy)', sparse: true }], percent: true },
  {
    // greedy in the first colour; each k its own colour, maj@k solid and pass@k dashed
    id: 'eval', title: 'Held-out: greedy, maj@k (solid), pass@k (dashed)', percent: true, sparse: true, nonNegative: true,
    series: [
      { key: 'eval/accuracy', label: 'greedy', color: 0 },
      ...EVAL_K.map((k, i) => ({ key: `eval/maj@${k}`, label: `maj@${k}`, color: i + 1 })),
      ...EVAL_K.filter((k) => k > 1).map((k) => ({ key: `eval/pass@${k}`, label: `pass@${k}`, color: EVAL_K.indexOf(k) + 1, dashed: true })),
    ],
  },
  { id: 'kl', title: 'KL to reference', nonNegative: true, series: [{ key: 'kl', label: 'kl' }] },
  { id: 'clip', title: 'Clip ratios', nonNegative: true, series: [{ key: 'clip_ratio/low', label: 'low' }, { key: 'clip_ratio/high', label: 'high' }], percent: true },
  { id: 'entropy', title: 'Entropy', nonNegative: true, series: [{ key: 'entropy', label: 'entropy' }] },
  { id: 'length', title: 'Completion length (tokens)', nonNegative: true, series: [{ key: 'completion_length/mean', label: 'mean' }, { key: 'completion_length/max', label: 'max' }] },
  { id: 'loss', title: 'Loss', series: [{ key: 'loss', label: 'loss' }] },
  { id: 'grad_norm', title: 'Grad norm', nonNegative: true, series: [{ key: 'grad_norm', label: 'grad norm' }] },
  { id: 'tps', title: 'Tokens / s', nonNegative: true, series: [{ key: 'tokens_per_second', label: 'tokens/s' }] },
  { id: 'time', title: 'Generate vs train time (s)', nonNegative: true, series: [{ key: 'time/generate', label: 'generate' }, { key: 'time/train', label: 'train' }] },
];

export interface Point { x: number; y: number }

/** A chart's series: its own, or for the reward components chart one per component the runs logged. */
export function chartSeries(def: ChartDef, runs: Iterable<RunSeries>): SeriesDef[] {
  if (!def.components) return def.series;
  const keys: string[] = [];
  for (const r of runs) keys.push(...r.values.keys());
  return componentNames(keys).map((name) => ({ key: componentKey(name), label: name }));
}

/** The divergence flag's words for a run (the trainer's rule, src/shared/components.ts) over its last
 * `window` metrics rows; null when its components do not diverge. */
export function divergenceWarning(run: RunSeries, window = 20): string | null {
  const series: Record<string, (number | null)[]> = {};
  for (const name of componentNames(run.values.keys())) series[name] = run.get(componentKey(name)) ?? [];
  return describeDivergence(divergence(series, window), Math.min(window, run.length));
}

/**
 * The y axis's fixed bounds for a chart: a chart of values that cannot be negative starts at 0. Left to
 * chart.js, a series that is all 0 (no clipping yet) gets an axis centred on 0: −100% … 100% for the clip
 * ratios, fractions that cannot be negative.
 */
export function yBounds(def: ChartDef): { min?: number } {
  return def.nonNegative ? { min: 0 } : {};
}

/** One run's metrics as growable columns. Rows at or after a replaced step are dropped first. */
export class RunSeries {
  step: number[] = [];
  values = new Map<string, (number | null)[]>();
  /** Incremented on every change, so caches know when to recompute. */
  version = 0;
  /** Index of the first row that changed since the caches were last brought up to date. */
  dirtyFrom = 0;

  get length(): number {
    return this.step.length;
  }

  append(cols: MetricsColumns, replace = false): void {
    const n0 = replace ? 0 : this.truncateFrom(cols.step[0]);
    if (replace) {
      this.step = [];
      this.values.clear();
    }
    const n = cols.step.length;
    for (let i = 0; i < n; i++) this.step.push(cols.step[i]);
    for (const [key, col] of Object.entries(cols.values)) {
      let arr = this.values.get(key);
      if (!arr) {
        arr = new Array<number | null>(n0).fill(null);
        this.values.set(key, arr);
      }
      for (let i = 0; i < n; i++) arr.push(col[i]);
    }
    // Keys absent from this block are padded so every column stays as long as `step`.
    for (const arr of this.values.values()) while (arr.length < this.step.length) arr.push(null);
    this.dirtyFrom = Math.min(this.dirtyFrom, n0);
    this.version++;
  }

  /** Drops rows with step ≥ `first` (a resumed run re-does steps); returns the new length. */
  private truncateFrom(first: number | undefined): number {
    if (first === undefined) return this.step.length;
    let i = this.step.length;
    while (i > 0 && this.step[i - 1] >= first) i--;
    if (i < this.step.length) {
      this.step.length = i;
      for (const arr of this.values.values()) arr.length = i;
    }
    return i;
  }

  get(key: string): (number | null)[] | undefined {
    return this.values.get(key);
  }

  /** Called after every cache has caught up with the current rows. */
  markClean(): void {
    this.dirtyFrom = this.step.length;
  }
}

/**
 * TensorBoard's smoothing: an exponential moving average debiased by 1 − w^n (so the start is not pulled
 * towards 0). Causal, hence extendable: `extend` continues from the previous state. Nulls stay nulls.
 */
export class Ema {
  out: (number | null)[] = [];
  private acc = 0;
  private n = 0;
  constructor(readonly weight: number) {}

  extend(ys: readonly (number | null)[], from = this.out.length): (number | null)[] {
    if (from < this.out.length) this.reset(ys, from);
    const w = this.weight;
    for (let i = this.out.length; i < ys.length; i++) {
      const y = ys[i];
      if (y === null || !Number.isFinite(y)) {
        this.out.push(null);
        continue;
      }
      if (w <= 0) {
        this.out.push(y);
        continue;
      }
      this.acc = this.acc * w + (1 - w) * y;
      this.n++;
      this.out.push(this.acc / (1 - Math.pow(w, this.n)));
    }
    return this.out;
  }

  private reset(ys: readonly (number | null)[], upTo: number): void {
    this.out = [];
    this.acc = 0;
    this.n = 0;
    this.extend(ys.slice(0, upTo), 0);
  }
}

export function smooth(ys: readonly (number | null)[], weight: number): (number | null)[] {
  return new Ema(weight).extend(ys);
}

/**
 * Min/max decimation: x is cut into equal buckets; each bucket keeps its first, minimum, maximum and last
 * point in x order, so spikes survive and a line through the result looks like the line through all
 * points at that width. Nulls are skipped. Series of at most 4 × `buckets` points pass through whole.
 *
 * Incremental: the bucket width is a power of two (≥ span / buckets), fixed until the run outgrows it, so
 * when steps are appended only the last, still-open bucket is recomputed. A 100,000-step live run costs
 * O(new points) per redraw instead of O(all points).
 */
export class Decimator {
  private width = 0;
  private x0 = NaN;
  private buckets = 0;
  private done: Point[] = [];
  /** Index of the first row of the open (last) bucket: where the next update resumes. */
  private resume = 0;

  update(xs: readonly number[], ys: readonly (number | null)[], buckets: number, dirtyFrom = 0): Point[] {
    const n = Math.min(xs.length, ys.length);
    if (n === 0) return [];
    if (n <= buckets * 4) return passThrough(xs, ys, 0, n);
    const x0 = xs[0];
    let width = 1;
    while (width * buckets < xs[n - 1] - x0) width *= 2;
    if (width !== this.width || x0 !== this.x0 || buckets !== this.buckets || dirtyFrom < this.resume) {
      this.width = width;
      this.x0 = x0;
      this.buckets = buckets;
      this.done = [];
      this.resume = 0;
    }
    const open: Point[] = [];
    let bucket = -1;
    let iFirst = -1, iMin = -1, iMax = -1, iLast = -1;
    const flush = (into: Point[]) => {
      if (iFirst < 0) return;
      const idx = [iFirst, iMin, iMax, iLast].sort((a, b) => a - b);
      let prev = -1;
      for (const i of idx) {
        if (i !== prev) into.push({ x: xs[i], y: ys[i] as number });
        prev = i;
      }
    };
    let openStart = this.resume;
    for (let i = this.resume; i < n; i++) {
      const y = ys[i];
      if (y === null || !Number.isFinite(y)) continue;
      const b = Math.floor((xs[i] - x0) / width);
      if (b !== bucket) {
        flush(this.done); // the previous bucket is complete: a later bucket has started
        bucket = b;
        openStart = i;
        iFirst = iMin = iMax = iLast = i;
        continue;
      }
      if (y < (ys[iMin] as number)) iMin = i;
      if (y > (ys[iMax] as number)) iMax = i;
      iLast = i;
    }
    flush(open);
    this.resume = openStart;
    return this.done.concat(open);
  }
}

function passThrough(xs: readonly number[], ys: readonly (number | null)[], from: number, n: number): Point[] {
  const out: Point[] = [];
  for (let i = from; i < n; i++) {
    const y = ys[i];
    if (y !== null && Number.isFinite(y)) out.push({ x: xs[i], y });
  }
  return out;
}

export function decimateMinMax(xs: readonly number[], ys: readonly (number | null)[], buckets: number): Point[] {
  return new Decimator().update(xs, ys, buckets);
}

/** mean ± std as two columns, extended from `from` (the first changed row). */
export function bandEdges(mean: readonly (number | null)[], std: readonly (number | null)[], edges: { upper: (number | null)[]; lower: (number | null)[] } = { upper: [], lower: [] }, from = 0) {
  const n = Math.min(mean.length, std.length);
  const start = Math.min(from, edges.upper.length);
  edges.upper.length = start;
  edges.lower.length = start;
  for (let i = start; i < n; i++) {
    const m = mean[i];
    const s = std[i];
    edges.upper.push(m === null || s === null ? null : m + s);
    edges.lower.push(m === null || s === null ? null : m - s);
  }
  return edges;
}

/** Per run and series: the smoothed curve, kept up to date incrementally as rows arrive. */
export class SmoothCache {
  private readonly emas = new Map<string, { ema: Ema; version: number }>();
  constructor(private weight: number) {}

  setWeight(w: number): void {
    if (w !== this.weight) {
      this.weight = w;
      this.emas.clear();
    }
  }

  get(runId: string, key: string, run: RunSeries): (number | null)[] {
    const ys = run.get(key) ?? [];
    const id = `${runId}\u0000${key}`;
    let e = this.emas.get(id);
    if (!e) {
      e = { ema: new Ema(this.weight), version: -1 };
      this.emas.set(id, e);
    }
    if (e.version !== run.version) {
      e.ema.extend(ys, Math.min(run.dirtyFrom, e.ema.out.length));
      e.version = run.version;
    }
    return e.ema.out;
  }

  drop(runId: string): void {
    for (const k of [...this.emas.keys()]) if (k.startsWith(`${runId}\u0000`)) this.emas.delete(k);
  }
}

/**
 * Everything a redraw needs per run and series, kept incrementally: decimated raw and smoothed lines and
 * the ±std band edges. After a redraw the caller marks the runs clean (RunSeries.markClean).
 */
export class DrawCache {
  private readonly decimators = new Map<string, Decimator>();
  private readonly bands = new Map<string, { upper: (number | null)[]; lower: (number | null)[]; version: number }>();
  readonly smooth: SmoothCache;

  constructor(weight: number) {
    this.smooth = new SmoothCache(weight);
  }

  setWeight(w: number): void {
    this.smooth.setWeight(w);
    for (const k of [...this.decimators.keys()]) if (k.endsWith('\u0000smooth')) this.decimators.delete(k);
  }

  private decimator(id: string): Decimator {
    let d = this.decimators.get(id);
    if (!d) this.decimators.set(id, (d = new Decimator()));
    return d;
  }

  line(runId: string, run: RunSeries, key: string, buckets: number, smoothed: boolean): Point[] {
    const ys = smoothed ? this.smooth.get(runId, key, run) : run.get(key) ?? [];
    return this.decimator(`${runId}\u0000${key}\u0000${smoothed ? 'smooth' : 'raw'}`).update(run.step, ys, buckets, run.dirtyFrom);
  }

  band(runId: string, run: RunSeries, meanKey: string, stdKey: string, buckets: number): { upper: Point[]; lower: Point[] } | null {
    const mean = run.get(meanKey);
    const std = run.get(stdKey);
    if (!mean || !std) return null;
    const id = `${runId}\u0000${meanKey}\u0000band`;
    let e = this.bands.get(id);
    if (!e) this.bands.set(id, (e = { upper: [], lower: [], version: -1 }));
    if (e.version !== run.version) {
      bandEdges(mean, std, e, run.dirtyFrom);
      e.version = run.version;
    }
    return {
      upper: this.decimator(`${id}\u0000upper`).update(run.step, e.upper, buckets, run.dirtyFrom),
      lower: this.decimator(`${id}\u0000lower`).update(run.step, e.lower, buckets, run.dirtyFrom),
    };
  }

  drop(runId: string): void {
    this.smooth.drop(runId);
    for (const m of [this.decimators, this.bands]) for (const k of [...m.keys()]) if (k.startsWith(`${runId}\u0000`)) m.delete(k);
  }
}
