/**
 * Prompt atlas benchmark: a synthetic questions.jsonl of 100,000 sampled groups over 20,000 distinct training
 * questions (16 groups a step, G = 8), plus a greedy held-out evaluation of 400 questions every 100 steps,
 * read by the extension host's code (src/atlas/atlasFeed.ts: the run directory's incremental tail, 4 MiB
 * reads, the QuestionsRow guard, the aggregator).
 *
 * Measures:
 *  - feed: reading and aggregating the whole file, as a past run opens (wall time, rows and groups a second);
 *  - heap growth: V8's used heap after a forced GC, before the feed and after it (the atlas held alive);
 *  - refresh: what the view does on each live update (category counts, and each category's first 200);
 *  - live append: one more step (16 groups) appended and fed.
 * Writes bench/results/atlas.json (or the path in $BENCH_OUT).
 *
 * Run: npm run bench:atlas   (node --expose-gc; no browser needed)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CATEGORIES, SPARK_BUCKETS } from '../../src/atlas/atlas';
import { AtlasFeed } from '../../src/atlas/atlasFeed';
import { median, repo } from '../harness';

const GROUPS = Number(process.env.BENCH_GROUPS ?? 100_000);
const QUESTIONS = Number(process.env.BENCH_QUESTIONS ?? 20_000);
const PER_STEP = 16;
const G = 8;
const EVAL_EVERY = 100;
const EVAL_QUESTIONS = 400;
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc (npm run bench:atlas)');
const heapMb = () => {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed / 2 ** 20;
};
const r2 = (x: number) => Math.round(x * 100) / 100;

/** Questions that get easier over the run at their own pace (seeded), drawn uniformly per group. */
function writeSynthetic(dir: string): { bytes: number; steps: number; rows: number } {
  let seed = 42; // mulberry32
  const rnd = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  const text = (i: number) => `Q${i}: what is ${(i * 7919) % 1000} + ${(i * 104729) % 1000}? Show your work.`;
  const skill = Array.from({ length: QUESTIONS }, () => rnd());
  const steps = Math.ceil(GROUPS / PER_STEP);
  const lines: string[] = [];
  for (let s = 1; s <= steps; s++) {
    const progress = s / steps;
    const qs: string[] = [], passed: number[] = [];
    for (let j = 0; j < PER_STEP && (s - 1) * PER_STEP + j < GROUPS; j++) {
      const q = Math.floor(rnd() * QUESTIONS);
      const p = Math.min(1, Math.max(0, skill[q] * 0.6 + progress * 0.6 - 0.1));
      let right = 0;
      for (let k = 0; k < G; k++) if (rnd() < p) right++;
      qs.push(text(q));
      passed.push(right);
    }
    lines.push(JSON.stringify({ step: s, source: 'train', questions: qs, passed, samples: G }));
    if (s % EVAL_EVERY === 0 || s === 1) {
      const eq = Array.from({ length: EVAL_QUESTIONS }, (_, i) => `held-out ${i}: what is ${i} * 3?`);
      lines.push(JSON.stringify({ step: s === 1 ? 0 : s, source: 'eval', questions: eq, passed: eq.map((_, i) => (rnd() < (i / EVAL_QUESTIONS) * 0.5 + progress * 0.5 ? 1 : 0)), samples: 1 }));
    }
  }
  const file = path.join(dir, 'questions.jsonl');
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return { bytes: fs.statSync(file).size, steps, rows: lines.length };
}

function main(): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-atlas-bench-'));
  const input = writeSynthetic(dir);
  const feeds: number[] = [], growth: number[] = [], refresh: number[] = [], append: number[] = [];
  let last: AtlasFeed | null = null;
  for (let r = 0; r < REPEATS; r++) {
    last = null;
    const before = heapMb();
    const t0 = performance.now();
    const feed = new AtlasFeed(dir);
    while (feed.pump(16).more);
    feeds.push(performance.now() - t0);
    growth.push(heapMb() - before);
    // the view's refresh: counts per category and each category's first page
    const t1 = performance.now();
    feed.atlas.categoryCounts();
    for (const c of CATEGORIES) feed.atlas.list(c, 200);
    refresh.push(performance.now() - t1);
    last = feed;
  }
  const feed = last!;
  const counts = feed.atlas.categoryCounts();
  let maxBuckets = 0;
  for (const h of feed.atlas.questions()) maxBuckets = Math.max(maxBuckets, h.train.size, h.eval.size);
  // live: one more step appended, fed
  for (let i = 0; i < 20; i++) {
    const step = input.steps + i + 1;
    fs.appendFileSync(path.join(dir, 'questions.jsonl'), JSON.stringify({ step, source: 'train', questions: Array.from({ length: PER_STEP }, (_, j) => `Q${(step * 31 + j) % QUESTIONS}: live`), passed: Array(PER_STEP).fill(3), samples: G }) + '\n');
    const t = performance.now();
    feed.pump();
    append.push(performance.now() - t);
  }
  fs.rmSync(dir, { recursive: true, force: true });

  const cpus = os.cpus();
  const result = {
    benchmark: 'atlas',
    date: new Date().toISOString(),
    machine: {
      description: `${cpus.length}-core ${cpus[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, ${os.type()} ${os.release()}, no GPU`,
      cpus: cpus.length, cpu_model: cpus[0]?.model ?? null, node: process.version, note: process.env.BENCH_NOTE ?? null,
    },
    input: { groups: GROUPS, distinct_training_questions_drawn_from: QUESTIONS, questions_seen: feed.atlas.size, groups_per_step: PER_STEP, G, steps: input.steps, eval_every: EVAL_EVERY, eval_questions: EVAL_QUESTIONS, rows: input.rows, questions_jsonl_bytes: input.bytes },
    feed_whole_file_ms: { median: r2(median(feeds)), runs: feeds.map(r2) },
    groups_per_second: Math.round(GROUPS / (median(feeds) / 1000)),
    heap_growth_mb: { median: r2(median(growth)), runs: growth.map(r2), per_question_bytes: Math.round((median(growth) * 2 ** 20) / feed.atlas.size) },
    view_refresh_ms: { median: r2(median(refresh)), runs: refresh.map(r2), what: 'category counts + the first 200 of each category, sorted' },
    live_append_one_step_ms: { median: r2(median(append)), max: r2(Math.max(...append)) },
    categories: counts,
    bad_rows: feed.atlas.counts.badRows,
    max_sparkline_buckets: maxBuckets,
    sparkline_cap: SPARK_BUCKETS,
  };
  const out = process.env.BENCH_OUT ?? path.join(repo, 'bench', 'results', 'atlas.json');
  fs.writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  console.log(JSON.stringify(result, null, 2));
}

main();
