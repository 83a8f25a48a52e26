/**
 * The dashboard's data handling, free of DOM and chart.js so it is unit-tested in Node and benchmarked:
 * per-run columnar series, EMA smoothing (TensorBoard's debiased form, extended incrementally as steps
 * arrive), and min/max decimation to a pixel budget so a 100,000-step run draws as fast as a short one.
 */
import type { MetricsColumns } from '../../src/protocol';

export interface SeriesDef { key: string; label: string; band?: string }
export interface ChartDef { id: string; title: string; series: SeriesDef[]; percent?: boolean }

export const CHARTS: ChartDef[] = [
  { id: 'reward', title: 'Reward (mean ± std)', series: [{ key: 'reward/mean', label: 'reward', band: 'reward/std' }] },
  { id: 'accuracy', title: 'Accuracy', series: [{ key: 'accuracy', label: 'train' }, { key: 'eval/accuracy', label: 'eval' }], percent: true },
  { id: 'kl', title: 'KL to reference', series: [{ key: 'kl', label: 'kl' }] },
  { id: 'clip', title: 'Clip ratios', series: [{ key: 'clip_ratio/low', label: 'low' }, { key: 'clip_ratio/high', label: 'high' }], percent: true },
  { id: 'entropy', title: 'Entropy', series: [{ key: 'entropy', label: 'entropy' }] },
  { id: 'length', title: 'Completion length (tokens)', series: [{ key: 'completion_length/mean', label: 'mean' }, { key: 'completion_length/max', label: 'max' }] },
  { id: 'loss', title: 'Loss', series: [{ key: 'loss', label: 'loss' }] },
  { id: 'grad_norm', title: 'Grad norm', series: [{ key: 'grad_norm', label: 'grad norm' }] },
  { id: 'tps', title: 'Tokens / s', series: [{ key: 'tokens_per_second', label: 'tokens/s' }] },
  { id: 'time', title: 'Generate vs train time (s)', series: [{ key: 'time/generate', label: 'generate' }, { key: 'time/train', label: 'train' }] },
];

export interface Point { x: number; y: number }

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
 * Min/max decimation: the points are cut into `buckets` equal ranges of x; each bucket keeps its first,
 * minimum, maximum and last point in x order, so spikes survive and a line drawn through the result looks
 * like the line through all points at that width. Nulls are skipped. Output ≤ 4 × buckets points.
 */
export function decimateMinMax(xs: readonly number[], ys: readonly (number | null)[], buckets: number, from = 0): Point[] {
  const n = Math.min(xs.length, ys.length);
  const out: Point[] = [];
  if (n - from <= 0) return out;
  if (n - from <= buckets * 4) {
    for (let i = from; i < n; i++) {
      const y = ys[i];
      if (y !== null && Number.isFinite(y)) out.push({ x: xs[i], y });
    }
    return out;
  }
  const x0 = xs[from];
  const span = xs[n - 1] - x0 || 1;
  let bucket = -1;
  let iFirst = -1, iMin = -1, iMax = -1, iLast = -1;
  const flush = () => {
    if (iFirst < 0) return;
    const idx = [iFirst, iMin, iMax, iLast].sort((a, b) => a - b);
    let prev = -1;
    for (const i of idx) {
      if (i !== prev) out.push({ x: xs[i], y: ys[i] as number });
      prev = i;
    }
  };
  for (let i = from; i < n; i++) {
    const y = ys[i];
    if (y === null || !Number.isFinite(y)) continue;
    const b = Math.min(buckets - 1, Math.floor(((xs[i] - x0) / span) * buckets));
    if (b !== bucket) {
      flush();
      bucket = b;
      iFirst = iMin = iMax = iLast = i;
      continue;
    }
    if (y < (ys[iMin] as number)) iMin = i;
    if (y > (ys[iMax] as number)) iMax = i;
    iLast = i;
  }
  flush();
  return out;
}

/** The ±std band around a mean: upper and lower edges, each decimated to its envelope. */
export function band(xs: readonly number[], mean: readonly (number | null)[], std: readonly (number | null)[], buckets: number): { upper: Point[]; lower: Point[] } {
  const n = Math.min(xs.length, mean.length, std.length);
  const up: (number | null)[] = new Array(n);
  const lo: (number | null)[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const m = mean[i];
    const s = std[i];
    up[i] = m === null || s === null ? null : m + s;
    lo[i] = m === null || s === null ? null : m - s;
  }
  return { upper: envelope(xs, up, buckets, Math.max), lower: envelope(xs, lo, buckets, Math.min) };
}

/** One point per bucket: the bucket's max (or min) at its first x. For filled bands, where spikes are noise. */
export function envelope(xs: readonly number[], ys: readonly (number | null)[], buckets: number, pick: (a: number, b: number) => number): Point[] {
  const n = Math.min(xs.length, ys.length);
  if (n <= buckets * 2) return decimateMinMax(xs, ys, Infinity);
  const out: Point[] = [];
  const x0 = xs[0];
  const span = xs[n - 1] - x0 || 1;
  let bucket = -1;
  for (let i = 0; i < n; i++) {
    const y = ys[i];
    if (y === null || !Number.isFinite(y)) continue;
    const b = Math.min(buckets - 1, Math.floor(((xs[i] - x0) / span) * buckets));
    if (b !== bucket) {
      out.push({ x: xs[i], y });
      bucket = b;
    } else out[out.length - 1].y = pick(out[out.length - 1].y, y);
  }
  return out;
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
