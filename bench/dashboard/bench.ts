/// <reference lib="dom" />
/**
 * Dashboard benchmark: the real dashboard bundle (dist/webview/dashboard.js: protocol validation, data
 * handling, decimation, chart.js) in Debian's Chromium through playwright-core, on a synthetic
 * 100,000-step metrics.jsonl that this script writes.
 *
 * Measures (medians):
 *  - host: reading + validating metrics.jsonl and converting it to columns (what the extension host does);
 *  - load + draw: posting the whole run to a fresh dashboard page until the first frame is drawn;
 *  - live update: one more step posted → redraw cost (the draw function) and post → drawn latency.
 * Writes bench/results/dashboard.json (or the path in $BENCH_OUT).
 *
 * Run: npm run bench:dashboard   (needs `npm run build` and Chromium: scripts/setup-e2e.sh installs it)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { rowsToColumns } from '../../src/dashboard/columns';
import { readMetrics } from '../../src/rundir/runDir';
import { launchPage, machine, median, openWebview, pct, repo, writeResult } from '../harness';

const STEPS = Number(process.env.BENCH_STEPS ?? 100_000);
const LOADS = Number(process.env.BENCH_LOADS ?? 5);
const UPDATES = Number(process.env.BENCH_UPDATES ?? 40);

const r2 = (x: number) => Math.round(x * 100) / 100;

/** A plausible GRPO run: rising reward and accuracy, KL creeping up, noisy everything (seeded). */
function writeSyntheticRun(dir: string, steps: number): string {
  fs.mkdirSync(dir, { recursive: true });
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const noise = (a: number) => (rnd() - 0.5) * 2 * a;
  const lines: string[] = [];
  let elapsed = 0;
  for (let s = 1; s <= steps; s++) {
    const p = 1 - Math.exp(-s / (steps / 5));
    const gen = 2 + noise(0.3);
    const train = 1 + noise(0.2);
    elapsed += gen + train;
    lines.push(JSON.stringify({
      step: s, time: 1.7e9 + elapsed, elapsed,
      'reward/mean': 0.2 + 0.7 * p + noise(0.08), 'reward/std': 0.3 - 0.15 * p + noise(0.03), accuracy: 0.2 + 0.7 * p + noise(0.08),
      frac_reward_zero_std: 0.1 + noise(0.05), kl: 0.002 + 0.05 * p + noise(0.004), 'clip_ratio/low': 0.01 + noise(0.005), 'clip_ratio/high': 0.02 + noise(0.005),
      entropy: 1.5 - p + noise(0.1), loss: noise(0.05), grad_norm: 0.5 + noise(0.2), learning_rate: 5e-4,
      'completion_length/mean': 30 + noise(5), 'completion_length/max': 64, truncated_ratio: 0.02 + noise(0.01),
      'advantage/mean': 0, 'advantage/std': 0.9 + noise(0.05), 'advantage/min': -2 + noise(0.3), 'advantage/max': 2 + noise(0.3),
      'time/generate': gen, 'time/train': train, tokens_per_second: 2000 + noise(300),
      ...(s % 25 === 0 ? { 'eval/accuracy': 0.2 + 0.7 * p + noise(0.03) } : {}),
      ...ledger(p, noise),
    }));
  }
  fs.writeFileSync(path.join(dir, 'metrics.jsonl'), lines.join('\n') + '\n');
  return dir;
}

/** The step's signal ledger (the "Where the signal went" chart): 1,024 sampled tokens in 32 groups, fewer
 * all-wrong and more all-correct groups as the run learns; the categories sum to ledger/tokens. */
function ledger(p: number, noise: (a: number) => number): Record<string, number> {
  const wrong = Math.max(0, Math.round(320 * (1 - p) + noise(40)));
  const correct = Math.max(0, Math.round(320 * p + noise(40)));
  const clipped = Math.max(0, Math.round(12 + noise(8)));
  const effective = Math.max(0, 1024 - wrong - correct - clipped - 16);
  return {
    'ledger/tokens': wrong + correct + clipped + 16 + effective, 'ledger/filtered': 0, 'ledger/truncated_masked': 16, 'ledger/no_signal_correct': correct,
    'ledger/no_signal_wrong': wrong, 'ledger/no_signal_other': 0, 'ledger/masked_other': 0, 'ledger/clipped_low': clipped >> 1, 'ledger/clipped_high': clipped - (clipped >> 1),
    'ledger/effective': effective, 'groups/mixed': 32 - Math.round((wrong + correct) / 32), 'groups/all_correct': Math.round(correct / 32), 'groups/all_wrong': Math.round(wrong / 32),
    'groups/no_signal_other': 0, 'groups/filtered': 0, 'groups/sampled': 32, 'grad_share/mixed': 0.99, 'grad_share/all_correct': 0.004, 'grad_share/all_wrong': 0.006,
    'grad_share/no_signal_other': 0, 'grad_share/len_0_25': 0.4, 'grad_share/len_25_50': 0.3, 'grad_share/len_50_75': 0.2, 'grad_share/len_75_100': 0.1,
  };
}

const THEME_VARS = `
  --vscode-foreground: #cccccc; --vscode-editor-background: #1e1e1e; --vscode-font-family: sans-serif; --vscode-font-size: 13px;
  --vscode-charts-blue: #3794ff; --vscode-charts-orange: #d18616; --vscode-charts-green: #89d185; --vscode-charts-purple: #b180d7;
  --vscode-charts-red: #f14c4c; --vscode-charts-yellow: #cca700; --vscode-editorWidget-border: #454545; --vscode-panel-border: #80808059;
  --vscode-badge-background: #4d4d4d; --vscode-badge-foreground: #ffffff; --vscode-editorWidget-background: #252526;`;

const openDashboard = (page: Page) => openWebview(page, 'dashboard', 'dashboard.css', THEME_VARS);

/** Posts a message inside the page and resolves with the next drawn frame's {ms, points} and the latency. */
async function postAndDraw(page: Page, msg: unknown): Promise<{ ms: number; points: number; latency: number }> {
  return page.evaluate((m) => new Promise<{ ms: number; points: number; latency: number }>((resolve) => {
    const t0 = performance.now();
    window.addEventListener('grpo-drawn', (e) => {
      const d = (e as CustomEvent<{ ms: number; points: number }>).detail;
      resolve({ ...d, latency: performance.now() - t0 });
    }, { once: true });
    window.postMessage(m, '*');
  }), msg);
}

async function main(): Promise<void> {
  const dist = path.join(repo, 'dist', 'webview', 'dashboard.js');
  if (!fs.existsSync(dist)) throw new Error('build first: npm run build');
  const runDir = writeSyntheticRun(path.join(repo, '.cache', 'bench', `run-${STEPS}`), STEPS);
  const bytes = fs.statSync(path.join(runDir, 'metrics.jsonl')).size;

  const hostRead: number[] = [];
  const hostColumns: number[] = [];
  let columns = rowsToColumns([]);
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const { rows, problems } = await readMetrics(runDir);
    const t1 = performance.now();
    columns = rowsToColumns(rows);
    hostColumns.push(performance.now() - t1);
    hostRead.push(t1 - t0);
    if (rows.length !== STEPS || problems.length) throw new Error(`read ${rows.length} rows, ${problems.length} problems`);
  }

  const { browser, page } = await launchPage();
  const run = { id: runDir, name: 'synthetic', live: true, status: null };
  const loads: { ms: number; latency: number; points: number }[] = [];
  const updates: { ms: number; latency: number }[] = [];
  try {
    for (let i = 0; i < LOADS; i++) {
      await openDashboard(page);
      // The message is built in the page beforehand so the timing covers what the webview does with it.
      // (Passed as one JSON string: playwright serialises structured arguments value by value, slowly.)
      await page.evaluate((json) => ((window as unknown as { __cols: unknown }).__cols = JSON.parse(json)), JSON.stringify(columns));
      const r = await page.evaluate(() => new Promise<{ ms: number; points: number; latency: number }>((resolve) => {
        const w = window as unknown as { __cols: unknown };
        const t0 = performance.now();
        window.addEventListener('grpo-drawn', (e) => resolve({ ...(e as CustomEvent<{ ms: number; points: number }>).detail, latency: performance.now() - t0 }), { once: true });
        window.postMessage({ type: 'runData', run: { id: 'r', name: 'synthetic', live: true, status: null }, columns: w.__cols, replace: true }, '*');
      }));
      loads.push(r);
    }
    await page.screenshot({ path: path.join(repo, '.cache', 'bench', 'dashboard-100k.png') });
    // Live updates on the loaded 100k-step run: one step at a time, spaced past the redraw throttle.
    const keys = Object.keys(columns.values);
    for (let i = 0; i < UPDATES; i++) {
      const step = STEPS + 1 + i;
      const values = Object.fromEntries(keys.map((k) => [k, [columns.values[k][columns.step.length - 1 - (i % 100)]]]));
      await page.waitForTimeout(120);
      const u = await postAndDraw(page, { type: 'runData', run: { ...run, id: 'r' }, columns: { step: [step], values }, replace: false });
      updates.push(u);
    }
  } finally {
    await browser.close();
  }

  const result = {
    benchmark: 'dashboard',
    date: new Date().toISOString(),
    machine: machine('Chromium --disable-gpu'),
    input: { steps: STEPS, metric_keys: Object.keys(columns.values).length, metrics_jsonl_bytes: bytes, charts: 11, viewport: '1400x900' },
    host_read_metrics_ms: { median: r2(median(hostRead)), runs: hostRead.map(r2) },
    host_rows_to_columns_ms: { median: r2(median(hostColumns)), runs: hostColumns.map(r2) },
    load_and_draw_ms: { median: r2(median(loads.map((l) => l.latency))), runs: loads.map((l) => r2(l.latency)), note: 'post of the whole run (structured clone + validation + series + decimation + 11 chart.js charts (10 metric charts and the signal ledger)) until the first frame is drawn' },
    first_draw_ms: { median: r2(median(loads.map((l) => l.ms))), note: 'the draw function alone (decimate + chart.js update) for the first frame' },
    points_drawn: loads[0]?.points ?? 0,
    live_update_redraw_ms: { median: r2(median(updates.map((u) => u.ms))), p90: r2(pct(updates.map((u) => u.ms), 0.9)), n: updates.length, note: 'one new step on a 100k-step run: the draw function (incremental smoothing, decimation, 11 chart updates)' },
    live_update_latency_ms: { median: r2(median(updates.map((u) => u.latency))), note: 'post → drawn, including the wait for the next animation frame' },
  };
  writeResult('dashboard', result);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
