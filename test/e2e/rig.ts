/**
 * The end-to-end rig: real VS Code (code-server from npm, see scripts/setup-e2e.sh) with the extension
 * installed from the freshly built .vsix (`npm run package`) as a user installs it — `--install-extension`,
 * not the repository — driven by Debian's Chromium through playwright-core.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { chromium, type Browser, type Frame, type Page } from 'playwright-core';
import { isPidAlive, readStatus } from '../../src/rundir/runDir';

export const repo = path.resolve(__dirname, '../..');

export interface RigEnv { node: string; codeServer: string; chromium: string }
export function rigEnv(): RigEnv {
  const file = path.join(repo, '.cache', 'e2e', 'env.json');
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: run scripts/setup-e2e.sh first`);
  return JSON.parse(fs.readFileSync(file, 'utf8')) as RigEnv;
}

export function log(msg: string): void {
  console.log(`[e2e ${new Date().toISOString().slice(11, 19)}] ${msg}`);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/**
 * Polls `fn` until it returns a truthy value; its exceptions are retried (a page still loading), except a
 * GiveUp (`giveUp(why)`), which fails at once. `failIf` is asked after every try: a reason stops the wait
 * (a trainer that died produces nothing more, however long one waits).
 */
export async function until<T>(what: string, fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs: number, everyMs = 500, opts: { failIf?: () => string | null } = {}): Promise<T> {
  const t0 = Date.now();
  let lastErr: unknown;
  while (Date.now() - t0 < timeoutMs) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      if (e instanceof GiveUp) throw e;
      lastErr = e;
    }
    const why = opts.failIf?.();
    if (why) throw new GiveUp(`while waiting for ${what}: ${why}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${Math.round(timeoutMs / 1000)}s waiting for ${what}${lastErr ? ` (last error: ${(lastErr as Error).message})` : ''}`);
}

/** The .vsix `npm run package` wrote for this machine; refused when older than the bundle it should hold. */
export function vsixPath(): string {
  const vsix = path.join(repo, 'dist', `grpo-studio-${process.platform}-${process.arch}.vsix`);
  const bundle = path.join(repo, 'dist', 'extension.js');
  if (!fs.existsSync(vsix)) throw new Error(`${vsix} is missing: run npm run package first`);
  if (fs.existsSync(bundle) && fs.statSync(bundle).mtimeMs > fs.statSync(vsix).mtimeMs) throw new Error(`${vsix} is older than dist/extension.js: run npm run package`);
  return vsix;
}

/** `code-server --install-extension <vsix>`, then checks that the installed copy carries its native binding. */
function installVsix(env: RigEnv, extensions: string, userData: string): void {
  const vsix = vsixPath();
  execFileSync(env.node, [env.codeServer, '--extensions-dir', extensions, '--user-data-dir', userData, '--install-extension', vsix], { stdio: ['ignore', 'pipe', 'inherit'] });
  const pkg = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8'));
  const installed = fs.readdirSync(extensions).find((d) => d.startsWith(`${pkg.publisher}.${pkg.name}-${pkg.version}`));
  if (!installed) throw new Error(`installing ${vsix} left no ${pkg.publisher}.${pkg.name} in ${extensions}`);
  const dir = path.join(extensions, installed);
  const binding = path.join(dir, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', process.platform, process.arch, 'onnxruntime_binding.node');
  if (!fs.existsSync(binding)) throw new Error(`the installed extension has no onnxruntime-node binding (${binding})`);
  if (fs.lstatSync(dir).isSymbolicLink()) throw new Error(`${dir} is a link, not an installed copy`);
  log(`installed ${path.relative(repo, vsix)} (${(fs.statSync(vsix).size / 2 ** 20).toFixed(1)} MiB) as ${installed}`);
}

export interface Rig { page: Page; browser: Browser; server: ChildProcess; workspace: string; root: string; shots: string; close(): Promise<void> }

/** Starts code-server on a fresh profile with `settings` as user settings (and `env` added to its environment), and opens `workspace` in Chromium. */
export async function startRig(opts: { settings: Record<string, unknown>; name: string; before?: (workspace: string) => void; env?: Record<string, string> }): Promise<Rig> {
  const env = rigEnv();
  const root = path.join(repo, '.e2e', `${opts.name}-${Date.now()}`);
  const shots = path.join(repo, '.e2e', 'screenshots');
  const workspace = path.join(root, 'workspace');
  const userData = path.join(root, 'user-data');
  const extensions = path.join(root, 'extensions');
  for (const d of [workspace, path.join(userData, 'User'), path.join(userData, 'Machine'), extensions, shots]) fs.mkdirSync(d, { recursive: true });
  opts.before?.(workspace);
  installVsix(env, extensions, userData);
  fs.writeFileSync(path.join(userData, 'User', 'settings.json'), JSON.stringify({
    'workbench.startupEditor': 'none',
    'security.workspace.trust.enabled': false,
    'workbench.tips.enabled': false,
    'extensions.ignoreRecommendations': true,
    'telemetry.telemetryLevel': 'off',
    'git.openRepositoryInParentFolders': 'never',
    'workbench.secondarySideBar.defaultVisibility': 'hidden',
    'chat.disableAIFeatures': true,
    ...opts.settings,
  }, null, 1));
  // code-server is a remote window: a machine-scoped setting (grpo.pythonPath, grpo.launcher) may be read from
  // the remote's Machine settings and its User value ignored, so the test's settings are written there too
  fs.writeFileSync(path.join(userData, 'Machine', 'settings.json'), JSON.stringify(opts.settings, null, 1));
  const config = path.join(root, 'code-server.yaml');
  fs.writeFileSync(config, '');
  const port = await freePort();
  const serverLog = fs.openSync(path.join(root, 'code-server.log'), 'w');
  const server = spawn(env.node, [
    env.codeServer, '--auth', 'none', '--bind-addr', `127.0.0.1:${port}`, '--disable-telemetry', '--disable-update-check',
    '--disable-workspace-trust', '--disable-getting-started-override', '--extensions-dir', extensions, '--user-data-dir', userData,
    '--config', config, workspace,
  ], { stdio: ['ignore', serverLog, serverLog], detached: true, env: { ...process.env, ...opts.env, PATH: `${path.dirname(env.node)}:${process.env.PATH}` } });
  const url = `http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`;
  await until('code-server to answer', async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.ok, 60_000);
  log(`code-server up on port ${port}`);
  const browser = await chromium.launch({
    executablePath: env.chromium,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
  await page.goto(url);
  await page.waitForSelector('.monaco-workbench', { timeout: 90_000 });
  log('workbench rendered');
  return {
    page, browser, server, workspace, root, shots,
    async close() {
      await browser.close().catch(() => undefined);
      try {
        process.kill(-server.pid!, 'SIGTERM');
      } catch {
        /* already gone */
      }
    },
  };
}

/** Runs a command from the palette. Commands contributed by extensions appear seconds after the workbench,
 *  and the palette snapshots the list when it opens, so this retries open → type → pick. */
export async function runCommand(page: Page, title: string, timeoutMs = 60_000): Promise<void> {
  await until(`command "${title}" in the palette`, async () => {
    await page.keyboard.press('Escape');
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible', timeout: 5000 });
    await input.fill(`>${title}`);
    const row = page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first();
    try {
      await row.waitFor({ state: 'visible', timeout: 2500 });
    } catch {
      await page.keyboard.press('Escape');
      return false;
    }
    const label = (await row.getAttribute('aria-label')) ?? (await row.innerText());
    if (!label.includes(title)) {
      await page.keyboard.press('Escape');
      return false;
    }
    await page.keyboard.press('Enter');
    return true;
  }, timeoutMs, 1000);
}

/** The content frame of a webview (two iframes deep) that contains `selector`. */
export async function webviewFrame(page: Page, selector: string, timeoutMs = 30_000): Promise<Frame> {
  return until(`a webview with ${selector}`, async () => {
    for (const f of page.frames()) {
      if (f === page.mainFrame()) continue;
      if (await f.$(selector).catch(() => null)) return f;
    }
    return undefined;
  }, timeoutMs);
}

export async function shot(rig: Rig, name: string): Promise<string> {
  const file = path.join(rig.shots, `${name}.png`);
  await rig.page.screenshot({ path: file });
  log(`screenshot ${path.relative(repo, file)}`);
  return file;
}

export async function statusBarText(page: Page): Promise<string> {
  const items = page.locator('.statusbar-item', { hasText: 'GRPO:' });
  return (await items.count()) ? (await items.first().innerText()).trim() : '';
}

/** What a dashboard chart drew: its points (`data-points`), and how many pixels of its plot area carry the
 * colour of one of its series (`data-colors`; axes, grid and labels never do). An empty chart with axes has
 * neither. */
export async function drawnSeries(frame: Frame, chart: string): Promise<{ points: number; coloured: number; plotWidth: number }> {
  await frame.evaluate('window.__name = (f) => f'); // tsx's keepNames helper, for the function below
  return frame.locator(`[data-chart="${chart}"]`).evaluate((card) => {
    const el = card as HTMLElement;
    const c = el.querySelector('canvas') as HTMLCanvasElement;
    const [left, top, right, bottom] = (el.dataset.plot ?? '0,0,0,0').split(',').map(Number);
    const scale = c.width / (c.clientWidth || 1); // device pixels per CSS pixel
    const rgb = (css: string): number[] | null => {
      const hex = /^#([0-9a-f]{6})/i.exec(css.trim());
      if (hex) return [0, 8, 16].map((s) => (parseInt(hex[1], 16) >> (16 - s)) & 255);
      const m = /^rgba?\(\s*(\d+)\D+(\d+)\D+(\d+)/.exec(css.trim());
      return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : null;
    };
    const colours = (JSON.parse(el.dataset.colors ?? '[]') as string[]).map(rgb).filter((x): x is number[] => x !== null);
    const x0 = Math.floor(left * scale), y0 = Math.floor(top * scale);
    const w = Math.max(0, Math.floor((right - left) * scale)), h = Math.max(0, Math.floor((bottom - top) * scale));
    let coloured = 0;
    if (w > 0 && h > 0 && colours.length) {
      const d = c.getContext('2d')!.getImageData(x0, y0, w, h).data;
      for (let i = 0; i < d.length; i += 4) {
        if (d[i + 3] < 200) continue;
        if (colours.some((k) => Math.abs(d[i] - k[0]) <= 40 && Math.abs(d[i + 1] - k[1]) <= 40 && Math.abs(d[i + 2] - k[2]) <= 40)) coloured++;
      }
    }
    return { points: Number(el.dataset.points ?? 0), coloured, plotWidth: w };
  });
}

/** Waits until dashboard chart `chart` draws a line (≥ 2 points, its series' colour across a third of its
 * plot's width), and says what it drew; fails with what it last saw. */
export async function waitForLine(frame: Frame, chart: string, timeoutMs = 60_000): Promise<{ points: number; coloured: number; plotWidth: number }> {
  try {
    return await until(`a line in the ${chart} chart`, async () => {
      const r = await drawnSeries(frame, chart);
      return r.points >= 2 && r.coloured >= r.plotWidth / 3 ? r : undefined;
    }, timeoutMs, 1000);
  } catch (e) {
    throw new Error(`${(e as Error).message}; it drew ${JSON.stringify(await drawnSeries(frame, chart).catch(() => null))}`);
  }
}

/** Fails a test at once: whatever `until` is polling, this is not retried. */
export class GiveUp extends Error {}
export function giveUp(why: string): never {
  throw new GiveUp(why);
}

/** Why the trainer of `runDir` can produce nothing more (status.json says failed, stopped or finished, or its
 * pid is gone while it says running), with the end of its log; null while it trains, or before status.json. */
export function trainerGone(runDir: string): string | null {
  const s = readStatus(runDir);
  if (!s?.ok) return null;
  const st = s.value;
  let why: string | null = null;
  if (st.state === 'failed' || st.state === 'stopped' || st.state === 'finished') why = `the run is ${st.state}${st.error ? `: ${st.error}` : ''}`;
  else if (!isPidAlive(st.pid)) why = `the trainer (pid ${st.pid}) is gone while status.json says ${st.state}`;
  if (!why) return null;
  const logFile = path.join(runDir, 'trainer.log');
  const tail = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').split('\n').slice(-30).join('\n') : '(no trainer.log)';
  return `${why}\n--- end of ${path.basename(runDir)}/trainer.log ---\n${tail}`;
}

/** Kills the trainer a test left running in `runDir` (whatever happened in the test), then closes the rig. */
export async function cleanUp(rig: Rig | undefined, runDir: string | undefined): Promise<void> {
  const st = runDir ? readStatus(runDir) : null;
  if (st?.ok && st.value.pid && isPidAlive(st.value.pid) && (st.value.state === 'running' || st.value.state === 'paused')) {
    log(`killing leftover trainer ${st.value.pid}`);
    process.kill(st.value.pid, 'SIGKILL');
  }
  await rig?.close();
}

/** Types `text` into the Training view form's field for setting `key` until the field holds it. */
export async function setField(form: Frame, key: string, text: string): Promise<void> {
  const field = form.locator(`#set-${key} input`);
  await until(`${key} = ${text} in the form`, async () => {
    await field.fill(text);
    return (await field.inputValue()) === text;
  }, 30_000, 500);
}
