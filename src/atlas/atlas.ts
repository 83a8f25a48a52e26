/**
 * The prompt atlas: how each question fared over a run, from questions.jsonl (docs/run-directory.md).
 * Pure and streaming: rows are fed as the file grows (`add`), in file order, and memory stays bounded per
 * question (counts, a few steps, and two fixed-size sparklines that downsample), so a run with 100,000
 * sampled groups costs what its distinct questions cost. No `vscode`, no Node modules.
 *
 * "Solved", per observation of a question:
 *  - in training (`source: "train"`): the group's pass rate (right answers / G) is at least
 *    SOLVED_PASS_RATE;
 *  - at a held-out evaluation (`source: "eval"`, greedy, one sample): the greedy answer is right. That is
 *    the same rule with one sample (pass rate 0 or 1).
 * A question's observations, in the order the run made them (training groups and evaluations together),
 * give its category:
 *  - never solved: no observation solved;
 *  - always solved: every observation solved;
 *  - learned: unsolved at first, then solved from some observation on (one flip);
 *  - forgotten: solved at first, then unsolved from some observation on (one flip);
 *  - unstable: solved and unsolved alternate (two flips or more).
 */
import type { QuestionsRow } from '../shared/records';

/** A group whose pass rate (right answers among G) is at least this solved its question. */
export const SOLVED_PASS_RATE = 0.5;
/** Buckets of a sparkline: when full, neighbours merge in pairs (each bucket then averages twice as many). */
export const SPARK_BUCKETS = 24;
/** Questions tracked at most; rows naming more new questions are counted in `untracked`, not kept. */
export const MAX_QUESTIONS = 250_000;
/** Characters of a question kept for matching and display (longer ones are kept as a prefix plus a hash). */
export const MAX_QUESTION_CHARS = 2_000;

/** Questions the view lists per category (the rest are counted in a last row). */
export const ATLAS_PAGE = 200;

export type Category = 'learned' | 'forgotten' | 'unstable' | 'never' | 'always';
/** The order the atlas lists its categories in: what changed first. */
export const CATEGORIES: readonly Category[] = ['learned', 'forgotten', 'unstable', 'never', 'always'];
export const CATEGORY_LABEL: Record<Category, string> = {
  learned: 'Learned', forgotten: 'Forgotten', unstable: 'Unstable', never: 'Never solved', always: 'Always solved',
};

export const isSolved = (passed: number, samples: number): boolean => samples > 0 && passed / samples >= SOLVED_PASS_RATE;

/**
 * A fixed-size series of values that downsamples: up to SPARK_BUCKETS buckets, each the mean of `width`
 * consecutive values (the last one possibly fewer); when full, pairs merge and `width` doubles. Memory is
 * O(SPARK_BUCKETS) however many values are pushed.
 */
export class Sparkline {
  private sums: number[] = [];
  private counts: number[] = [];
  /** values per full bucket */
  width = 1;
  /** values pushed */
  n = 0;

  push(v: number): void {
    this.n++;
    const last = this.sums.length - 1;
    if (last >= 0 && this.counts[last] < this.width) {
      this.sums[last] += v;
      this.counts[last]++;
      return;
    }
    if (this.sums.length === SPARK_BUCKETS) this.halve(); // every bucket is full: pairs merge into full ones
    this.sums.push(v);
    this.counts.push(1);
  }

  private halve(): void {
    const s: number[] = [], c: number[] = [];
    for (let i = 0; i < this.sums.length; i += 2) {
      s.push(this.sums[i] + (this.sums[i + 1] ?? 0));
      c.push(this.counts[i] + (this.counts[i + 1] ?? 0));
    }
    this.sums = s;
    this.counts = c;
    this.width *= 2;
  }

  /** The bucket means, oldest first (at most SPARK_BUCKETS). */
  values(): number[] {
    return this.sums.map((s, i) => s / this.counts[i]);
  }

  /** How many buckets are held: never more than SPARK_BUCKETS. */
  get size(): number {
    return this.sums.length;
  }
}

/** One question's history over the run. */
export class QuestionHistory {
  readonly train = new Sparkline();
  readonly eval = new Sparkline();
  /** observations: training groups and held-out evaluations */
  observations = 0;
  solvedCount = 0;
  /** solved/unsolved changes between consecutive observations */
  flips = 0;
  firstSolved: boolean | null = null;
  lastSolved: boolean | null = null;
  firstStep = 0;
  lastStep = 0;
  /** the step of the last flip (learned: when it was learned; forgotten: when it was lost) */
  lastFlipStep: number | null = null;
  /** right answers and completions over every training group of it */
  trainPassed = 0;
  trainSamples = 0;
  /** held-out evaluations, and how many were right */
  evals = 0;
  evalsRight = 0;
  lastTrainRate: number | null = null;
  lastEvalRight: boolean | null = null;

  constructor(readonly question: string) {}

  observe(step: number, source: 'train' | 'eval', passed: number, samples: number): void {
    const solved = isSolved(passed, samples);
    if (this.observations === 0) {
      this.firstSolved = solved;
      this.firstStep = step;
    } else if (solved !== this.lastSolved) {
      this.flips++;
      this.lastFlipStep = step;
    }
    this.observations++;
    if (solved) this.solvedCount++;
    this.lastSolved = solved;
    this.lastStep = step;
    if (source === 'train') {
      const rate = passed / samples;
      this.train.push(rate);
      this.trainPassed += passed;
      this.trainSamples += samples;
      this.lastTrainRate = rate;
    } else {
      this.eval.push(solved ? 1 : 0);
      this.evals++;
      if (solved) this.evalsRight++;
      this.lastEvalRight = solved;
    }
  }

  get category(): Category {
    if (this.solvedCount === 0) return 'never';
    if (this.solvedCount === this.observations) return 'always';
    if (this.flips === 1) return this.firstSolved ? 'forgotten' : 'learned';
    return 'unstable';
  }
}

export interface AtlasCounts {
  rows: number;
  /** training groups and held-out answers read */
  observations: number;
  /** rows that were not valid questions.jsonl rows (unreadable lines included): skipped */
  badRows: number;
  /** observations of questions past MAX_QUESTIONS: counted, not kept */
  untracked: number;
}

/** The key a question is kept under: itself, or for a very long one a prefix and a hash of the whole. */
export function questionKey(q: string): string {
  if (q.length <= MAX_QUESTION_CHARS) return q;
  let h1 = 0x811c9dc5, h2 = 0x01000193;
  for (let i = 0; i < q.length; i++) {
    const c = q.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995) ^ (h2 >>> 15);
  }
  return `${q.slice(0, MAX_QUESTION_CHARS)}… #${(h1 >>> 0).toString(16)}${(h2 >>> 0).toString(16)}`;
}

/** Every question of a run and its history, fed row by row. */
export class Atlas {
  private readonly byKey = new Map<string, QuestionHistory>();
  readonly counts: AtlasCounts = { rows: 0, observations: 0, badRows: 0, untracked: 0 };
  /** the last step seen (the furthest) */
  lastStep = 0;
  /** bumped on every change: a view redraws when it differs from what it drew */
  version = 0;

  constructor(private readonly maxQuestions = MAX_QUESTIONS) {}

  /** Adds one questions.jsonl row (already checked against the QuestionsRow guard); a row whose counts make
   * no sense (more right answers than samples, negative counts) is counted bad and skipped whole. */
  add(row: QuestionsRow): boolean {
    if (!validRow(row)) {
      this.bad();
      return false;
    }
    this.counts.rows++;
    this.version++;
    if (row.step > this.lastStep) this.lastStep = row.step;
    for (let i = 0; i < row.questions.length; i++) {
      const key = questionKey(row.questions[i]);
      let h = this.byKey.get(key);
      if (!h) {
        if (this.byKey.size >= this.maxQuestions) {
          this.counts.untracked++;
          continue;
        }
        h = new QuestionHistory(key);
        this.byKey.set(key, h);
      }
      h.observe(row.step, row.source, row.passed[i], row.samples);
      this.counts.observations++;
    }
    return true;
  }

  /** A line that was not a questions.jsonl row (torn JSON, wrong fields): counted, skipped. */
  bad(n = 1): void {
    this.counts.badRows += n;
    this.version++;
  }

  get size(): number {
    return this.byKey.size;
  }

  get(question: string): QuestionHistory | undefined {
    return this.byKey.get(questionKey(question));
  }

  questions(): IterableIterator<QuestionHistory> {
    return this.byKey.values();
  }

  /** How many questions each category holds. */
  categoryCounts(): Record<Category, number> {
    const out = Object.fromEntries(CATEGORIES.map((c) => [c, 0])) as Record<Category, number>;
    for (const h of this.byKey.values()) out[h.category]++;
    return out;
  }

  /** The questions of `category`, most telling first, at most `limit` of them (and how many there are). */
  list(category: Category, limit = Infinity): { items: QuestionHistory[]; total: number } {
    const all: QuestionHistory[] = [];
    for (const h of this.byKey.values()) if (h.category === category) all.push(h);
    all.sort(ORDER[category]);
    return { items: all.length > limit ? all.slice(0, limit) : all, total: all.length };
  }
}

/** Within a category: learned/forgotten by when it happened (latest first), unstable by flips, the rest by
 * how often the question was seen. */
const bySeen = (a: QuestionHistory, b: QuestionHistory) => b.observations - a.observations || a.question.localeCompare(b.question);
const ORDER: Record<Category, (a: QuestionHistory, b: QuestionHistory) => number> = {
  learned: (a, b) => (b.lastFlipStep ?? 0) - (a.lastFlipStep ?? 0) || bySeen(a, b),
  forgotten: (a, b) => (b.lastFlipStep ?? 0) - (a.lastFlipStep ?? 0) || bySeen(a, b),
  unstable: (a, b) => b.flips - a.flips || bySeen(a, b),
  never: bySeen,
  always: bySeen,
};

function validRow(row: QuestionsRow): boolean {
  if (row.step < 0 || row.samples < 1 || row.passed.length !== row.questions.length) return false;
  if (row.source === 'eval' && row.samples !== 1) return false;
  return row.passed.every((p) => p >= 0 && p <= row.samples);
}

const BARS = '▁▂▃▄▅▆▇█';
/** A text sparkline of values in [0, 1]: one bar per value (▁ for 0 … █ for 1). */
export function sparkText(values: readonly number[]): string {
  return values.map((v) => BARS[Math.max(0, Math.min(BARS.length - 1, Math.round(v * (BARS.length - 1))))]).join('');
}

/** A short account of a question's history, for tooltips and messages. */
export function describeHistory(h: QuestionHistory): string {
  const parts: string[] = [];
  if (h.train.n) {
    parts.push(`training: ${h.train.n} group${h.train.n === 1 ? '' : 's'} (steps ${h.firstStep}–${h.lastStep}), ${h.trainPassed}/${h.trainSamples} right overall, last pass rate ${(h.lastTrainRate ?? 0).toFixed(2)}; ${sparkText(h.train.values())}${h.train.width > 1 ? ` (each bar ${h.train.width} groups)` : ''}`);
  }
  if (h.evals) {
    parts.push(`held-out (greedy): right ${h.evalsRight} of ${h.evals} evaluations, last ${h.lastEvalRight ? 'right' : 'wrong'}; ${sparkText(h.eval.values())}${h.eval.width > 1 ? ` (each bar ${h.eval.width} evaluations)` : ''}`);
  }
  const flip = h.lastFlipStep === null ? '' : h.category === 'learned' ? `, solved from step ${h.lastFlipStep}` : h.category === 'forgotten' ? `, lost at step ${h.lastFlipStep}` : `, last change at step ${h.lastFlipStep}`;
  parts.push(`${CATEGORY_LABEL[h.category].toLowerCase()}: solved in ${h.solvedCount} of ${h.observations} observations, ${h.flips} change${h.flips === 1 ? '' : 's'}${flip}`);
  return parts.join('\n');
}
