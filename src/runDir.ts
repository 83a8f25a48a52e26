/**
 * Reading run directories (docs/run-directory.md). Node only, no `vscode`: unit-tested directly.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { countNewlines, parseJsonlBuffer, parseLine, type JsonlChunk, type LineProblem } from './jsonLines';
import { checkEvent, checkGroupRecord, checkMetricsRow, checkStatus, type Checked, type GroupRecord, type MetricsRow, type RunEvent, type RunState, type RunStatus } from './protocol';

export const STATUS_FILE = 'status.json';
export const METRICS_FILE = 'metrics.jsonl';
export const EVENTS_FILE = 'events.jsonl';
export const SAMPLES_FILE = 'samples.jsonl';
export const CONFIG_FILE = 'config.json';
export const LOG_FILE = 'trainer.log';

/** status.json, validated. `null` when the file does not exist (yet). */
export function readStatus(dir: string): Checked<RunStatus> | null {
  let text: string;
  try {
    text = fs.readFileSync(path.join(dir, STATUS_FILE), 'utf8');
  } catch {
    return null;
  }
  return parseLine(text, checkStatus);
}

export function readConfig(dir: string): Record<string, unknown> | null {
  try {
    const v = JSON.parse(fs.readFileSync(path.join(dir, CONFIG_FILE), 'utf8'));
    return typeof v === 'object' && v && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

/** Whether a process id is alive (signal 0 probes without signalling; EPERM means it exists). */
export function isPidAlive(pid: number | null | undefined): boolean {
  if (!pid || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The state to show: a `running`/`paused` status whose process is gone is a crash. */
export type EffectiveState = RunState | 'crashed' | 'unknown';
export function effectiveState(status: RunStatus | null, alive: (pid: number | null) => boolean = isPidAlive): EffectiveState {
  if (!status) return 'unknown';
  if ((status.state === 'running' || status.state === 'paused') && !alive(status.pid)) return 'crashed';
  return status.state;
}

/** A run can be continued with `--resume` when it is not alive and has a checkpoint. */
export function isResumable(state: EffectiveState, status: RunStatus | null): boolean {
  return (state === 'crashed' || state === 'stopped' || state === 'failed' || state === 'finished') && !!status?.last_checkpoint;
}

/**
 * Incremental reader of one append-only .jsonl file: each `read()` returns the whole lines written since
 * the previous one. A torn tail is left for the next read; a file that shrank (rewritten) starts over.
 */
export class JsonlTail<T> {
  private offset = 0;
  private lines = 0;
  constructor(readonly file: string, private readonly check: (v: unknown) => Checked<T>) {}

  read(maxBytes = 256 * 1024 * 1024): JsonlChunk<T> & { restarted: boolean } {
    let fd: number;
    try {
      fd = fs.openSync(this.file, 'r');
    } catch {
      return { records: [], problems: [], consumed: 0, tornTail: false, restarted: false };
    }
    try {
      const size = fs.fstatSync(fd).size;
      let restarted = false;
      if (size < this.offset) {
        this.offset = 0;
        this.lines = 0;
        restarted = true;
      }
      const len = Math.min(size - this.offset, maxBytes);
      if (len <= 0) return { records: [], problems: [], consumed: 0, tornTail: false, restarted };
      const buf = Buffer.allocUnsafe(len);
      const got = fs.readSync(fd, buf, 0, len, this.offset);
      const chunk = parseJsonlBuffer(buf.subarray(0, got), this.check, this.lines + 1);
      this.offset += chunk.consumed;
      this.lines += countNewlines(buf, chunk.consumed);
      return { ...chunk, restarted };
    } finally {
      fs.closeSync(fd);
    }
  }
}

export const metricsTail = (dir: string) => new JsonlTail<MetricsRow>(path.join(dir, METRICS_FILE), checkMetricsRow);
export const eventsTail = (dir: string) => new JsonlTail<RunEvent>(path.join(dir, EVENTS_FILE), checkEvent);

/** Every metrics row of a run (and the lines that could not be read). */
export function readMetrics(dir: string): { rows: MetricsRow[]; problems: LineProblem[] } {
  const c = metricsTail(dir).read();
  return { rows: c.records, problems: c.problems };
}

export interface Checkpoint {
  name: string;
  step: number;
  path: string;
}

/** Complete checkpoints (`checkpoints/step_NNNNNN`, never `.tmp`), in step order. */
export function listCheckpoints(dir: string): Checkpoint[] {
  const root = path.join(dir, 'checkpoints');
  let names: string[];
  try {
    names = fs.readdirSync(root);
  } catch {
    return [];
  }
  return names
    .map((name) => ({ name, m: /^step_(\d+)$/.exec(name) }))
    .filter((x): x is { name: string; m: RegExpExecArray } => x.m !== null)
    .filter((x) => fs.statSync(path.join(root, x.name), { throwIfNoEntry: false })?.isDirectory())
    .map((x) => ({ name: x.name, step: Number(x.m[1]), path: path.join(root, x.name) }))
    .sort((a, b) => a.step - b.step);
}

/** The GRPO steps that logged a whole group in samples.jsonl, read line by line (the file can be large). */
export async function listSampleSteps(dir: string): Promise<number[]> {
  const file = path.join(dir, SAMPLES_FILE);
  if (!fs.existsSync(file)) return [];
  const steps: number[] = [];
  const rl = readline.createInterface({ input: fs.createReadStream(file, 'utf8'), crlfDelay: Infinity });
  for await (const line of rl) {
    const m = /"step"\s*:\s*(\d+)/.exec(line);
    if (m) steps.push(Number(m[1]));
  }
  return steps;
}

export interface RunSummary {
  dir: string;
  name: string;
  status: RunStatus | null;
  statusError: string | null;
  state: EffectiveState;
  bestReward: number | null;
  modified: number;
}

/** Best (highest) mean reward of a run, cached by metrics file size so repeated listings stay cheap. */
const bestRewardCache = new Map<string, { size: number; best: number | null; tail: JsonlTail<MetricsRow> }>();
export function bestReward(dir: string): number | null {
  const file = path.join(dir, METRICS_FILE);
  const size = fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0;
  let entry = bestRewardCache.get(dir);
  if (!entry || size < entry.size) {
    entry = { size: 0, best: null, tail: metricsTail(dir) };
    bestRewardCache.set(dir, entry);
  }
  if (size !== entry.size) {
    for (const r of entry.tail.read().records) {
      const v = r['reward/mean'];
      if (typeof v === 'number' && (entry.best === null || v > entry.best)) entry.best = v;
    }
    entry.size = size;
  }
  return entry.best;
}

/** Every run directory (a folder holding status.json or config.json) under the runs folder, newest first. */
export function listRuns(runsFolder: string): RunSummary[] {
  let names: string[];
  try {
    names = fs.readdirSync(runsFolder);
  } catch {
    return [];
  }
  const out: RunSummary[] = [];
  for (const name of names) {
    const dir = path.join(runsFolder, name);
    const st = fs.statSync(dir, { throwIfNoEntry: false });
    if (!st?.isDirectory()) continue;
    const hasStatus = fs.existsSync(path.join(dir, STATUS_FILE));
    if (!hasStatus && !fs.existsSync(path.join(dir, CONFIG_FILE))) continue;
    const s = readStatus(dir);
    const status = s?.ok ? s.value : null;
    out.push({
      dir,
      name,
      status,
      statusError: s && !s.ok ? s.error : null,
      state: effectiveState(status),
      bestReward: bestReward(dir),
      modified: (status?.updated_at ?? st.mtimeMs / 1000) * 1000,
    });
  }
  return out.sort((a, b) => b.modified - a.modified || a.name.localeCompare(b.name));
}

/** A fresh, sortable run-directory name: `20251124-163000-arith`. */
export function newRunName(task: string, now = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const stamp = `${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}-${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}`;
  const slug = path.basename(task).replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9_-]+/g, '-').slice(0, 24) || 'run';
  return `${stamp}-${slug}`;
}

/**
 * The group logged at GRPO step `step` in samples.jsonl (the last one, if a resumed run logged the step
 * twice), validated; read line by line so a large file is never held whole.
 */
export async function readSampleGroup(dir: string, step: number): Promise<Checked<GroupRecord> | null> {
  const file = path.join(dir, SAMPLES_FILE);
  if (!fs.existsSync(file)) return null;
  let found: string | null = null;
  const rl = readline.createInterface({ input: fs.createReadStream(file, 'utf8'), crlfDelay: Infinity });
  // The same test as listSampleSteps: the first "step" key of the line.
  for await (const line of rl) if (Number(/"step"\s*:\s*(\d+)/.exec(line)?.[1]) === step) found = line;
  if (found === null) return null;
  return parseLine(found, (v) => {
    const c = checkGroupRecord(v);
    return c.ok && (v as { step?: unknown }).step !== step ? { ok: false, error: `no group logged at step ${step}` } : c;
  });
}

/** The question of the last logged group (to pre-fill "Sample Group"), from the file's tail. */
export function lastSampleQuestion(dir: string): string | null {
  const file = path.join(dir, SAMPLES_FILE);
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const size = fs.fstatSync(fd).size;
    const len = Math.min(size, 4 * 1024 * 1024);
    const buf = Buffer.allocUnsafe(len);
    fs.readSync(fd, buf, 0, len, size - len);
    const lines = buf.toString('utf8').split('\n').filter((l) => l.trim());
    for (let i = lines.length - 1; i >= 0; i--) {
      const m = /"question"\s*:\s*("(?:[^"\\]|\\.)*")/.exec(lines[i]);
      if (m) return JSON.parse(m[1]) as string;
    }
    return null;
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}
