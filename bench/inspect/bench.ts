/// <reference lib="dom" />
/**
 * Inspection benchmark.
 *  - ONNX scoring of a 1,000-token document with the built-in model, in Node with onnxruntime-node
 *    exactly as the extension host does it (src/inspect/onnx/scorer.ts: tokenize, policy + reference forward,
 *    per-token KL); the model is a real export (test/fixtures/tiny_run.py + `python -m grpo export-onnx`,
 *    cached in .cache/bench/inspect-run); and the same for a subword tokenizer: a tiny random Qwen2 with a
 *    byte-level BPE tokenizer (test/fixtures/tiny_hf_run.py, cached in .cache/bench/inspect-hf-run),
 *    tokenized by @huggingface/tokenizers with offsets (src/inspect/onnx/hfTokenizer.ts).
 *  - A hover answered from cached scores (src/inspect/docScores.ts hoverAt: find the token, build the
 *    Markdown), what the hover provider does per request.
 *  - The token heatmap of 64 completions × 512 tokens drawn by the real inspector bundle
 *    (dist/webview/inspector.js) in Debian's Chromium through playwright-core: message → laid out.
 * Writes bench/results/inspect.json (or $BENCH_OUT). Run: npm run bench:inspect
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { fromScoreResult, hoverAt } from '../../src/inspect/docScores';
import { findExport } from '../../src/inspect/onnx/exports';
import { OnnxScorer } from '../../src/inspect/onnx/scorer';
import type { GroupRecord } from '../../src/shared/records';
import { trainerEnv } from '../../src/environment/python';
import { launchPage, machine, median, openWebview, pct, repo, writeResult } from '../harness';

const python = process.env.GRPO_PYTHON ?? path.join(repo, '.venv', 'bin', 'python');
const RUNS = Number(process.env.BENCH_RUNS ?? 20);
const r3 = (x: number) => Math.round(x * 1000) / 1000;

function fixture(name = 'inspect-run', script = 'tiny_run.py', step = 'step_000003'): string {
  const run = path.join(repo, '.cache', 'bench', name);
  const cp = path.join(run, 'checkpoints', step);
  if (!fs.existsSync(path.join(cp, 'onnx', 'manifest.json'))) {
    fs.rmSync(run, { recursive: true, force: true });
    const env = trainerEnv(path.join(repo, 'trainer'));
    execFileSync(python, [path.join(repo, 'test', 'fixtures', script), run], { env, stdio: 'inherit' });
    execFileSync(python, ['-m', 'grpo', 'export-onnx', '--checkpoint', cp, '--out', path.join(cp, 'onnx')], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  }
  return run;
}

/** A 1,001-character arith-like document: 1,000 scored tokens (the first has no context). */
function makeDocument(): string {
  const lines: string[] = [];
  let i = 0;
  while (lines.join('\n').length < 1001) {
    const a = (i * 7) % 10, b = (i * 3 + 1) % 10;
    lines.push(`${a}+${b}=${a + b}`, `${a + b}*${b}=${(a + b) * b}`);
    i++;
  }
  return lines.join('\n').slice(0, 1001);
}

/** About 1,000 byte-level BPE tokens of prose with non-ASCII characters and newlines (the first unscored). */
function makeSubwordDocument(scorer: OnnxScorer): string {
  let doc = '';
  for (let i = 0; scorer.text.encode(doc).ids.length < 1001; i++) doc += `Step ${i}: Natalia sold ${48 + i} clips — naïve café, x = ∑ ${i}/4 😀\n`;
  return doc.slice(0, scorer.text.encode(doc).offsets[1000][1]); // cut after the 1,001st token
}

/** Median time of `RUNS` scorings of `text` (after one first call), with load and first-call times. */
async function timeScoring(scorer: OnnxScorer, text: string, loadMs: number, expectTokens: number, note: string) {
  const first = performance.now();
  let res = await scorer.score(text);
  const firstMs = performance.now() - first;
  if (Math.abs(res.tokens.length - expectTokens) > 2) throw new Error(`scored ${res.tokens.length} tokens, expected ${expectTokens}`);
  const scoring: number[] = [];
  const tokenizing: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    scorer.text.encode(text);
    tokenizing.push(performance.now() - t0);
    const t1 = performance.now();
    res = await scorer.score(text);
    scoring.push(performance.now() - t1);
  }
  return { res, stats: { median: r3(median(scoring)), p90: r3(pct(scoring, 0.9)), n: scoring.length, bar: 100, tokens: res.tokens.length, tokenize_median_ms: r3(median(tokenizing)), first_call_ms: r3(firstMs), session_load_ms: r3(loadMs), note } };
}

/** A synthetic group of 64 completions × 512 tokens with every per-token array filled (seeded). */
function bigGroup(G = 64, T = 512): GroupRecord {
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const chars = '0123456789+-*=#\n ()';
  const tokens = Array.from({ length: G }, (_, g) => {
    const text = Array.from({ length: T }, () => chars[Math.floor(rnd() * chars.length)]);
    const logp = text.map(() => -rnd() * 4);
    const adv = (g % 2 ? 1 : -1) * rnd();
    return { text, logp, old_logp: logp.map((x) => x + (rnd() - 0.5) * 0.1), ref_logp: logp.map((x) => x - rnd() * 0.3), kl: logp.map(() => rnd() * 0.05), advantage: text.map(() => adv), entropy: text.map(() => rnd() * 3) };
  });
  return {
    step: 1, question: '(3+1)*3', answer: '12', prompt: '(3+1)*3\n', completions: tokens.map((t) => t.text.join('')), rewards: tokens.map((_, g) => g % 2),
    correct: tokens.map((_, g) => g % 2 === 1), advantages: tokens.map((t) => t.advantage[0]), truncated: tokens.map(() => true), tokens,
    step_rewards: tokens.map(() => [1, 0, 1]), step_ends: tokens.map(() => [100, 300, 500]),
  };
}

const THEME_VARS = `--vscode-foreground: #cccccc; --vscode-editor-background: #1e1e1e; --vscode-font-family: sans-serif; --vscode-font-size: 13px;
  --vscode-editor-font-family: monospace; --vscode-panel-border: #80808059; --vscode-focusBorder: #007fd4; --vscode-charts-blue: #3794ff;`;

const openInspector = (page: Page) => openWebview(page, 'inspector', 'inspect.css', THEME_VARS);

async function main(): Promise<void> {
  if (!fs.existsSync(path.join(repo, 'dist', 'webview', 'inspector.js'))) throw new Error('build first: npm run build');
  const run = fixture();
  const exp = findExport(run);

  // --- ONNX scoring ---------------------------------------------------------------------------------
  const text = makeDocument();
  const tLoad = performance.now();
  const scorer = await OnnxScorer.load(exp);
  const { res, stats: charStats } = await timeScoring(scorer, text, performance.now() - tLoad, 1000,
    'built-in model (exported step_000003 of test/fixtures/tiny_run.py), policy + reference forward on 1,001 tokens, per-token KL; sessions loaded once and cached');
  const hfExp = findExport(fixture('inspect-hf-run', 'tiny_hf_run.py', 'step_000001'));
  const tHf = performance.now();
  const hfScorer = await OnnxScorer.load(hfExp);
  const hfLoadMs = performance.now() - tHf;
  const { stats: subwordStats } = await timeScoring(hfScorer, makeSubwordDocument(hfScorer), hfLoadMs, 1000,
    'tiny random Qwen2 (2 layers, hidden 64, byte-level BPE of 400 tokens; test/fixtures/tiny_hf_run.py step_000001), a 1,001-token document with non-ASCII text and newlines: @huggingface/tokenizers + offsets, policy + reference forward, per-token KL');

  // --- Hover from cache --------------------------------------------------------------------------------
  const scores = fromScoreResult(res, 'bench');
  const hovers: number[] = [];
  let chars = 0;
  for (let i = 0; i < 2000; i++) {
    const off = 1 + ((i * 7919) % 1000);
    const t0 = performance.now();
    const h = hoverAt(scores, off);
    hovers.push(performance.now() - t0);
    chars += h?.markdown.length ?? 0;
  }
  if (chars === 0) throw new Error('no hover text');

  // --- Heatmap 64 × 512 -----------------------------------------------------------------------------
  const { browser, page } = await launchPage();
  const group = bigGroup();
  const draws: { ms: number; build: number; latency: number; tokens: number }[] = [];
  const redraws: number[] = [];
  try {
    for (let i = 0; i < 5; i++) {
      await openInspector(page);
      await page.evaluate((json) => ((window as unknown as { __msg: unknown }).__msg = JSON.parse(json)), JSON.stringify({ type: 'group', group, origin: { runDir: '/r', checkpoint: null, step: 1, logged: true }, title: 'bench', focus: null, quantity: 'advantage' }));
      draws.push(await page.evaluate(() => new Promise<{ ms: number; build: number; latency: number; tokens: number }>((resolve) => {
        const t0 = performance.now();
        window.addEventListener('grpo-drawn', (e) => {
          const d = (e as CustomEvent<{ ms: number; build: number; tokens: number }>).detail;
          requestAnimationFrame(() => resolve({ ...d, latency: performance.now() - t0 }));
        }, { once: true });
        window.postMessage((window as unknown as { __msg: unknown }).__msg, '*');
      })));
    }
    await page.evaluate(() => document.querySelector('.heat-head')?.scrollIntoView());
    await page.screenshot({ path: path.join(repo, '.cache', 'bench', 'inspector-64x512.png') });
    // Switching the quantity re-draws every token.
    for (const q of ['kl', 'ratio', 'logp', 'entropy', 'advantage']) {
      await page.evaluate((quantity) => {
        const w = window as unknown as { __msg: { quantity: string } };
        w.__msg.quantity = quantity;
      }, q);
      redraws.push(await page.evaluate(() => new Promise<number>((resolve) => {
        window.addEventListener('grpo-drawn', (e) => resolve((e as CustomEvent<{ ms: number }>).detail.ms), { once: true });
        window.postMessage((window as unknown as { __msg: unknown }).__msg, '*');
      })));
    }
  } finally {
    await browser.close();
  }

  const onnxruntimeNode = (JSON.parse(fs.readFileSync(path.join(repo, 'node_modules', 'onnxruntime-node', 'package.json'), 'utf8')) as { version: string }).version;
  const result = {
    benchmark: 'inspect',
    date: new Date().toISOString(),
    machine: machine('onnxruntime-node CPU; Chromium --disable-gpu', { onnxruntime_node: onnxruntimeNode }),
    onnx_score_1000_tokens_ms: charStats,
    onnx_score_1000_subword_tokens_ms: subwordStats,
    hover_from_cache_ms: { median: r3(median(hovers)), p99: r3(pct(hovers, 0.99)), n: hovers.length, bar: 20, note: 'hoverAt on cached scores of the 1,000-token document: binary search + Markdown' },
    heatmap_64x512_ms: {
      median: r3(median(draws.map((d) => d.ms))), runs: draws.map((d) => r3(d.ms)), bar: 200, tokens: draws[0]?.tokens ?? 0,
      build_only_ms: r3(median(draws.map((d) => d.build))),
      post_to_painted_ms: r3(median(draws.map((d) => d.latency))),
      quantity_switch_ms: r3(median(redraws)),
      note: 'inspector bundle in Chromium: group message → table + heatmap built and laid out (ms); post_to_painted adds validation of the message and the next animation frame',
    },
  };
  writeResult('inspect', result);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
