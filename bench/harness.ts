/// <reference lib="dom" />
/**
 * What the browser benchmarks share (bench/dashboard, bench/inspect): a headless Debian Chromium through
 * playwright-core, a real webview bundle loaded into a page that stands in for VS Code's webview (theme
 * variables, acquireVsCodeApi), the machine description and the result file.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export const repo = path.resolve(__dirname, '..');

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** The p-quantile by the nearest-rank rule (p in [0, 1]; the largest value for p = 1). */
export const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

export const chromiumPath = (): string => process.env.CHROMIUM ?? '/usr/bin/chromium';

/** Headless Chromium without GPU (the numbers are CPU-only) and one 1400×900 page that reports its errors. */
export async function launchPage(): Promise<{ browser: Browser; page: Page }> {
  const browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('pageerror', (e) => console.error('page error:', e.message));
  page.on('console', (m) => m.type() === 'error' && console.error('console:', m.text()));
  return { browser, page };
}

/**
 * Loads dist/webview/<bundle>.js into a fresh page styled by media/<css> and media/common.css with the given
 * VS Code theme variables, and waits for the webview's 'ready' message. Messages it posts collect in
 * window.__posted.
 */
export async function openWebview(page: Page, bundle: string, css: string, themeVars: string): Promise<void> {
  const style = fs.readFileSync(path.join(repo, 'media', css), 'utf8').replace(/@import[^;]+;/, '') + fs.readFileSync(path.join(repo, 'media', 'common.css'), 'utf8');
  await page.setContent(`<!DOCTYPE html><html><head><style>body{${themeVars}} ${style}</style></head><body class="vscode-dark"><div id="app"></div></body></html>`);
  // tsx compiles functions passed to page.evaluate with esbuild's keepNames helper; give the page one.
  await page.evaluate('window.__name = (f) => f');
  await page.evaluate(() => {
    const w = window as unknown as { __posted: unknown[]; acquireVsCodeApi: () => unknown };
    w.__posted = [];
    let state: unknown;
    w.acquireVsCodeApi = () => ({ postMessage: (m: unknown) => w.__posted.push(m), getState: () => state, setState: (s: unknown) => (state = s) });
  });
  await page.addScriptTag({ path: path.join(repo, 'dist', 'webview', `${bundle}.js`) });
  await page.waitForFunction(() => (window as unknown as { __posted: { type: string }[] }).__posted.some((m) => m.type === 'ready'));
}

/** The machine a result was measured on: results compare only on the same one. */
export function machine(gpuNote: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const cpus = os.cpus();
  const memory = Math.round(os.totalmem() / 2 ** 30);
  return {
    description: `${cpus.length}-core ${cpus[0]?.model ?? 'cpu'}, ${memory} GiB RAM, ${os.type()} ${os.release()}, no GPU (${gpuNote})`,
    cpus: cpus.length,
    cpu_model: cpus[0]?.model ?? null,
    memory_gib: memory,
    node: process.version,
    ...extra,
    chromium: execFileSync(chromiumPath(), ['--version'], { encoding: 'utf8' }).trim(),
    note: process.env.BENCH_NOTE ?? null,
  };
}

/** Writes the result to $BENCH_OUT or bench/results/<name>.json and prints it. */
export function writeResult(name: string, result: unknown): void {
  const out = process.env.BENCH_OUT ?? path.join(repo, 'bench', 'results', `${name}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  console.log(JSON.stringify(result, null, 2));
}
