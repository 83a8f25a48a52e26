/**
 * Reading run directories (docs/run-directory.md). Node only, no `vscode`: unit-tested directly.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { groupKind, isGroupKind, type GroupKind } from '../shared/groupKind';
import { countNewlines, parseJsonlBuffer, parseLine, type JsonlChunk, type LineProblem } from '../shared/jsonLines';
import { checkEvent, checkGroupRecord, checkMetricsRow, checkQuestionsRow, checkStatus, type Checked, type EvalEvent, type GroupRecord, type MetricsRow, type QuestionsRow, type RunEvent, type RunState, type RunStatus } from '../shared/records';

export const STATUS_FILE = 'status.json';
export const METRICS_FILE = 'metrics.jsonl';
export const EVENTS_FILE = 'events.jsonl';
export const SAMPLES_FILE = 'samples.jsonl';
/** how each question fared, per step and evaluation (the prompt atlas) */
export const QUESTIONS_FILE = 'questions.jsonl';
export const CONFIG_FILE = 'config.json';
export const LOG_FILE = 'trainer.log';

/**
 * Size caps per file kind. A run directory is untrusted data (copied, downloaded, cloned): a file past its
 * cap is refused, never read whole, and only regular files are read (never a symlink, FIFO or device).
 */
export const LIMITS = {
  /** status.json, config.json */
  jsonFile: 1024 * 1024,
  /** one line of metrics.jsonl / events.jsonl */
  recordLine: 1024 * 1024,
  /** one line of samples.jsonl (a whole group with per-token arrays) */
  sampleLine: 16 * 1024 * 1024,
  /** an ONNX export's tokenizer.json (a byte-level BPE vocabulary is a few MB) */
  tokenizerFile: 64 * 1024 * 1024,
  /** what the dashboard loads of one metrics.jsonl (about 300,000 steps); past it, it says so */
  metricsFile: 256 * 1024 * 1024,
};

/** A run-directory file that cannot be read safely; the message says why (shown as "unreadable: why"). */
export class UnreadableFile extends Error {}

const NOFOLLOW = (fs.constants.O_NOFOLLOW ?? 0) | (fs.constants.O_NONBLOCK ?? 0);
const MiB = (n: number) => `${Math.round((n / 1024 / 1024) * 10) / 10} MB`;

/**
 * Opens `file` for reading if it is a regular file and not a symbolic link (O_NOFOLLOW, and O_NONBLOCK so
 * a FIFO cannot block the open). Returns null when it does not exist; throws UnreadableFile otherwise.
 */
export function openRegular(file: string): { fd: number; size: number } | null {
  const st = fs.lstatSync(file, { throwIfNoEntry: false });
  if (!st) return null;
  const name = path.basename(file);
  if (st.isSymbolicLink()) throw new UnreadableFile(`${name} is a symbolic link`);
  if (!st.isFile()) throw new UnreadableFile(`${name} is not a regular file`);
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    throw new UnreadableFile(code === 'ELOOP' ? `${name} is a symbolic link` : `${name}: ${(e as Error).message}`);
  }
  const after = fs.fstatSync(fd);
  if (!after.isFile()) {
    fs.closeSync(fd);
    throw new UnreadableFile(`${name} is not a regular file`);
  }
  return { fd, size: after.size };
}

/** A small file of a run directory, whole: regular, at most `cap` bytes. null when absent. */
export function readSmallFile(file: string, cap = LIMITS.jsonFile): string | null {
  const f = openRegular(file);
  if (!f) return null;
  try {
    if (f.size > cap) throw new UnreadableFile(`${path.basename(file)} is ${MiB(f.size)}, over its ${MiB(cap)} limit`);
    const buf = Buffer.allocUnsafe(f.size);
    const got = fs.readSync(f.fd, buf, 0, f.size, 0);
    return buf.subarray(0, got).toString('utf8');
  } finally {
    fs.closeSync(f.fd);
  }
}

/** status.json, validated. `null` when the file does not exist (yet). Throws UnreadableFile. */
function readStatusStrict(dir: string): Checked<RunStatus> | null {
  const text = readSmallFile(path.join(dir, STATUS_FILE));
  return text === null ? null : parseLine(text, checkStatus);
}

/** status.json, validated. `null` when the file does not exist (yet); not ok when unreadable or invalid. */
export function readStatus(dir: string): Checked<RunStatus> | null {
  try {
    return readStatusStrict(dir);
  } catch (e) {
    return { ok: false, error: e instanceof UnreadableFile ? `unreadable: ${e.message}` : String(e) };
  }
}

/** config.json's keys that are not settings: `history`, the list of resumes and what each changed. */
export const CONFIG_NON_SETTINGS = ['history'];

/** A run's settings from its config.json (without `history`, which is no setting), or null. */
export function readConfig(dir: string): Record<string, unknown> | null {
  try {
    const text = readSmallFile(path.join(dir, CONFIG_FILE));
    const v = text === null ? null : JSON.parse(text);
    if (typeof v !== 'object' || !v || Array.isArray(v)) return null;
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).filter(([k]) => !CONFIG_NON_SETTINGS.includes(k)));
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

/** Linux: when process `pid` started (clock ticks after boot, /proc/PID/stat field 22) and its command
 * line; null when it is gone or elsewhere. */
export function processIdentity(pid: number): { start: number; cmdline: string } | null {
  if (process.platform !== 'linux' || !Number.isInteger(pid) || pid <= 0) return null;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const start = Number(stat.slice(stat.lastIndexOf(')') + 1).trim().split(/\s+/)[19]);
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
    return Number.isFinite(start) ? { start, cmdline } : null;
  } catch {
    return null;
  }
}

/**
 * Whether the pid in status.json is still the trainer that wrote it, so it may be re-attached to and
 * signalled: the same host, and (on Linux) a process that started when status.json says its trainer did
 * and runs grpo. A status.json is untrusted: without this, Stop could SIGINT any process whose pid it names.
 * Elsewhere only the host and the pid's liveness can be checked.
 */
export function trainerAlive(status: RunStatus | null): boolean {
  if (!status?.pid || status.host !== os.hostname()) return false;
  if (process.platform !== 'linux') return isPidAlive(status.pid);
  const id = processIdentity(status.pid);
  return !!id && typeof status.proc_start === 'number' && id.start === status.proc_start && /\bgrpo\b/.test(id.cmdline);
}

/** The state to show: a `running`/`paused` status whose trainer is gone is a crash. */
export type EffectiveState = RunState | 'crashed' | 'unknown';
export function effectiveState(status: RunStatus | null, alive: (status: RunStatus) => boolean = trainerAlive): EffectiveState {
  if (!status) return 'unknown';
  if ((status.state === 'running' || status.state === 'paused') && !alive(status)) return 'crashed';
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

  /** Reads from the file's present end on: only what is appended from now on (a re-attached live run's new
   * groups, not the whole history). A line being written just now is reported as unreadable by the next read. */
  skipToEnd(): this {
    try {
      const f = openRegular(this.file);
      if (f) {
        fs.closeSync(f.fd);
        this.offset = f.size;
      }
    } catch {
      // unreadable now: read() says so when it is asked
    }
    return this;
  }

  /** At most `maxBytes` per call (the live session polls again for the rest), so no call stalls the host. */
  read(maxBytes = 16 * 1024 * 1024): JsonlChunk<T> & { restarted: boolean } {
    let f: { fd: number; size: number } | null;
    try {
      f = openRegular(this.file);
    } catch (e) {
      return { records: [], problems: [{ line: 0, text: '', error: `unreadable: ${(e as Error).message}` }], consumed: 0, tornTail: false, restarted: false };
    }
    if (!f) return { records: [], problems: [], consumed: 0, tornTail: false, restarted: false };
    const { fd, size } = f;
    try {
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
      if (chunk.consumed === 0 && got === maxBytes) {
        // no newline in a whole read: a line past any record's size; skip it rather than wait for it forever
        this.offset += got;
        return { ...chunk, problems: [{ line: this.lines + 1, text: '', error: `line longer than ${MiB(maxBytes)}` }], restarted };
      }
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
/** questions.jsonl from its start: the prompt atlas feeds on it as it grows. */
export const questionsTail = (dir: string) => new JsonlTail<QuestionsRow>(path.join(dir, QUESTIONS_FILE), checkQuestionsRow);
/** The groups samples.jsonl logs from now on (not the ones already in it). */
export const newSamplesTail = (dir: string) => new JsonlTail<GroupRecord>(path.join(dir, SAMPLES_FILE), checkGroupRecord).skipToEnd();

export interface LineScan {
  /** bytes of the file when it was opened */
  size: number;
  /** bytes read: less than `size` when `maxBytes` stopped the scan */
  read: number;
  /** 1-based numbers of lines skipped for being longer than the cap */
  overlong: number[];
}

/**
 * Calls `onLine` with every whole line (without its newline) of a regular file, read in 1 MiB chunks
 * from a stream, so a large file never blocks the extension host and is never held whole. A line longer
 * than `maxLine` is skipped (its number reported); an unterminated last line is left out (torn).
 */
export async function scanLines(file: string, maxLine: number, onLine: (line: Buffer, lineNo: number) => void, opts: { start?: number; maxBytes?: number } = {}): Promise<LineScan | null> {
  const f = openRegular(file);
  if (!f) return null;
  const start = opts.start ?? 0;
  const end = Math.min(f.size, start + (opts.maxBytes ?? Infinity));
  const out: LineScan = { size: f.size, read: 0, overlong: [] };
  if (end <= start) {
    fs.closeSync(f.fd);
    return out;
  }
  const stream = fs.createReadStream('', { fd: f.fd, start, end: end - 1, highWaterMark: 1024 * 1024 });
  let pending: Buffer[] = [];
  let pendingLen = 0;
  let skipping = false;
  let lineNo = 0;
  let consumed = start; // the end of the last whole line
  let chunkStart = start;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    let pos = 0;
    for (;;) {
      const nl = chunk.indexOf(10, pos);
      const piece = chunk.subarray(pos, nl < 0 ? chunk.length : nl);
      if (!skipping && pendingLen + piece.length > maxLine) {
        skipping = true;
        pending = [];
        pendingLen = 0;
      }
      if (!skipping) {
        pending.push(piece);
        pendingLen += piece.length;
      }
      if (nl < 0) break;
      lineNo++;
      consumed = chunkStart + nl + 1;
      if (skipping) out.overlong.push(lineNo);
      else onLine(pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingLen), lineNo);
      pending = [];
      pendingLen = 0;
      skipping = false;
      pos = nl + 1;
    }
    chunkStart += chunk.length;
  }
  out.read = consumed - start;
  return out;
}

/** Every metrics row of a run (and the lines that could not be read), read incrementally; past
 * LIMITS.metricsFile the rest is left unread and `capped` says how much there was. */
export async function readMetrics(dir: string, maxBytes = LIMITS.metricsFile): Promise<{ rows: MetricsRow[]; problems: LineProblem[]; capped: { size: number; read: number } | null }> {
  const rows: MetricsRow[] = [];
  const problems: LineProblem[] = [];
  let scan: LineScan | null;
  try {
    scan = await scanLines(path.join(dir, METRICS_FILE), LIMITS.recordLine, (buf, line) => {
      const text = buf.toString('utf8');
      if (text.trim() === '') return;
      const r = parseLine(text, checkMetricsRow);
      if (r.ok) rows.push(r.value);
      else problems.push({ line, text: text.slice(0, 200), error: r.error });
    }, { maxBytes });
  } catch (e) {
    return { rows, problems: [{ line: 0, text: '', error: `unreadable: ${(e as Error).message}` }], capped: null };
  }
  for (const line of scan?.overlong ?? []) problems.push({ line, text: '', error: `line longer than ${MiB(LIMITS.recordLine)}` });
  const capped = scan && scan.size > maxBytes ? { size: scan.size, read: scan.read } : null;
  return { rows, problems, capped };
}

/**
 * The held-out evaluation of the start (the eval event at step 0, written when SFT ends and GRPO has not yet
 * stepped) as a metrics row, so that the held-out charts begin where GRPO starts. Later evaluations are in
 * their step's metrics row already. The keys are the trainer's (`EvalReport.metrics()` in evaluation.py).
 */
export function startEvalRow(ev: RunEvent): MetricsRow | null {
  if (ev.kind !== 'eval' || ev.step !== 0) return null;
  const e = ev as EvalEvent;
  const row: MetricsRow = { step: 0, time: e.time, 'eval/accuracy': e.accuracy };
  for (const [prefix, byK] of [['pass', e.pass_at_k], ['maj', e.maj_at_k]] as const) {
    for (const [k, v] of Object.entries(byK ?? {})) row[`eval/${prefix}@${k}`] = v;
  }
  return row;
}

/** `rows` with the start's row first (in place of any earlier step-0 row): metrics rows begin at step 1. */
export function withStartRow(rows: MetricsRow[], start: MetricsRow | null): MetricsRow[] {
  if (!start) return rows;
  return rows[0]?.step === 0 ? [start, ...rows.slice(1)] : [start, ...rows];
}

/** How far into events.jsonl the start's evaluation is looked for: it is written when SFT ends, after a few
 * phase, decontamination and warning events. */
const START_EVAL_SCAN = 4 * 1024 * 1024;

/** The start's held-out evaluation (events.jsonl's step-0 eval event) as a metrics row, or null. */
export async function readStartEval(dir: string): Promise<MetricsRow | null> {
  let start: MetricsRow | null = null;
  try {
    await scanLines(path.join(dir, EVENTS_FILE), LIMITS.recordLine, (buf) => {
      if (start) return;
      const r = parseLine(buf.toString('utf8'), checkEvent);
      if (r.ok) start = startEvalRow(r.value);
    }, { maxBytes: START_EVAL_SCAN });
  } catch {
    return null; // an unreadable events file costs the chart its start point, nothing else
  }
  return start;
}

/**
 * Why a .jsonl file of a run cannot be read, or null: not a regular file, or a line (its first or its last)
 * longer than `maxLine`. Reads at most about 2 × maxLine bytes, asynchronously.
 */
const problemCache = new Map<string, { key: string; why: string | null }>();
export async function jsonlProblem(file: string, maxLine: number): Promise<string | null> {
  // The Runs view refreshes every second while a run trains: a file unchanged since its last check is not read again.
  const st = fs.lstatSync(file, { throwIfNoEntry: false });
  const key = st ? `${st.size}:${st.mtimeMs}:${st.ino}:${maxLine}` : '';
  const hit = problemCache.get(file);
  if (hit && hit.key === key) return hit.why;
  const why = await checkJsonl(file, maxLine);
  problemCache.set(file, { key, why });
  return why;
}

async function checkJsonl(file: string, maxLine: number): Promise<string | null> {
  let f: { fd: number; size: number } | null;
  try {
    f = openRegular(file);
  } catch (e) {
    return (e as Error).message;
  }
  if (!f) return null;
  const { fd, size } = f;
  const block = Buffer.allocUnsafe(Math.min(1024 * 1024, Math.max(1, size)));
  // the descriptor openRegular checked, read without blocking the event loop
  const read = (len: number, pos: number) => new Promise<number>((res, rej) => fs.read(fd, block, 0, len, pos, (err, n) => (err ? rej(err) : res(n))));
  const tooLong = `${path.basename(file)} has a line longer than ${MiB(maxLine)}`;
  try {
    // the first line
    for (let pos = 0; pos < size; ) {
      const n = await read(Math.min(block.length, size - pos), pos);
      if (n <= 0) break;
      const nl = block.subarray(0, n).indexOf(10);
      if (nl >= 0) {
        if (pos + nl > maxLine) return tooLong;
        break;
      }
      pos += n;
      if (pos > maxLine) return tooLong;
    }
    // the last line (a torn one still being written counts too: it must fit the cap as well)
    for (let end = size > 0 ? size - 1 : 0, scanned = 0; end > 0; ) {
      const len = Math.min(block.length, end);
      const n = await read(len, end - len);
      if (n <= 0 || block.subarray(0, n).lastIndexOf(10) >= 0) break;
      end -= n;
      scanned += n;
      if (scanned > maxLine) return tooLong;
    }
    return null;
  } catch (e) {
    return `${path.basename(file)}: ${(e as Error).message}`;
  } finally {
    fs.closeSync(fd);
  }
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
    .filter((x) => fs.lstatSync(path.join(root, x.name), { throwIfNoEntry: false })?.isDirectory())
    .map((x) => ({ name: x.name, step: Number(x.m[1]), path: path.join(root, x.name) }))
    .sort((a, b) => a.step - b.step);
}

/** Whether a line can hold a record: every record is a JSON object, so a line that does not open with `{`
 * (`[{"step": 3}]`, `42`, `null`) is skipped by the readers that look into lines without decoding them. */
function opensObject(line: Buffer | string): boolean {
  const text = typeof line === 'string' ? line : line.subarray(0, 64).toString('latin1');
  return text.trimStart().startsWith('{');
}

/** The step of a samples.jsonl line: its first "step" key, looked for in the line's first 256 bytes
 * (the trainer writes it first), so listing steps never decodes whole groups. None for a line that is not
 * an object. */
function stepOf(line: Buffer): number | null {
  if (!opensObject(line)) return null;
  const m = /"step"\s*:\s*(\d+)/.exec(line.subarray(0, 256).toString('utf8'));
  return m ? Number(m[1]) : null;
}

/** The GRPO steps that logged a whole group in samples.jsonl, read incrementally (the file can be large). */
export async function listSampleSteps(dir: string): Promise<number[]> {
  const steps: number[] = [];
  try {
    await scanLines(path.join(dir, SAMPLES_FILE), LIMITS.sampleLine, (line) => {
      const s = stepOf(line);
      if (s !== null) steps.push(s);
    });
  } catch {
    return [];
  }
  return steps;
}

/**
 * The steps with a complete replay record: `replay/step_N/` folders holding their checksums.json (written last),
 * as the trainer's replay.records() reads them; links and anything else are ignored (a run directory is
 * untrusted), at most 10,000 entries looked at.
 */
export function replayableSteps(runDir: string): number[] {
  const root = path.join(runDir, 'replay');
  try {
    if (!fs.lstatSync(root).isDirectory()) return [];
    const steps: number[] = [];
    for (const e of fs.readdirSync(root, { withFileTypes: true }).slice(0, 10_000)) {
      const m = /^step_(\d+)$/.exec(e.name);
      if (!m || !e.isDirectory()) continue;
      const sums = fs.lstatSync(path.join(root, e.name, 'checksums.json'), { throwIfNoEntry: false });
      if (sums?.isFile()) steps.push(Number(m[1]));
    }
    return steps.sort((a, b) => a - b);
  } catch {
    return [];
  }
}

/** A logged group as the group lists show it: its step and its kind (null when its line names no rewards). */
export interface SampleEntry { step: number; kind: GroupKind | null }

/** The value of top-level key `key` of a samples.jsonl line, when it is a flat JSON array (rewards, correct),
 * found without decoding the line: in JSON text a key's opening quote is never escaped, and a string that
 * holds `"rewards"` holds it as `\"rewards\"`, so the first `"rewards"` followed by a colon is the key (no
 * nested record of a group has one). */
function flatArrayOf(line: Buffer, key: string): unknown[] | null {
  let at = line.indexOf(`"${key}"`);
  while (at >= 0) {
    let i = at + key.length + 2;
    while (line[i] === 0x20) i++;
    if (line[i] === 0x3a /* : */) {
      i++;
      while (line[i] === 0x20) i++;
      if (line[i] !== 0x5b /* [ */) return null;
      const end = line.indexOf(0x5d /* ] */, i);
      if (end < 0) return null;
      try {
        const v = JSON.parse(line.subarray(i, end + 1).toString('latin1'));
        return Array.isArray(v) ? v : null;
      } catch {
        return null;
      }
    }
    at = line.indexOf(`"${key}"`, at + 1);
  }
  return null;
}

/** The kind of the group on a samples.jsonl line without decoding the whole line: its `kind` when the trainer
 * wrote one, else derived from its rewards (and `correct`) as groupKind does; null when neither is there. */
export function kindOfLine(line: Buffer): GroupKind | null {
  if (!opensObject(line)) return null;
  const at = line.indexOf('"kind"');
  const k = at < 0 ? null : /^"kind"\s*:\s*"([a-z_]+)"/.exec(line.subarray(at, at + 64).toString('latin1'));
  if (k && isGroupKind(k[1])) return k[1];
  const rewards = flatArrayOf(line, 'rewards');
  if (!rewards || !rewards.every((r) => typeof r === 'number')) return null;
  const correct = flatArrayOf(line, 'correct');
  return groupKind({ rewards: rewards as number[], correct: correct?.every((c) => typeof c === 'boolean') ? (correct as boolean[]) : undefined });
}

/** The groups samples.jsonl logs (step and kind), read incrementally and cached by file size: a growing file
 * is read from where the last call stopped; one that shrank or was replaced is read again. */
const sampleListCache = new Map<string, { size: number; read: number; entries: SampleEntry[] }>();
export async function listSampleGroups(dir: string): Promise<SampleEntry[]> {
  const file = path.join(dir, SAMPLES_FILE);
  const size = fs.lstatSync(file, { throwIfNoEntry: false })?.size ?? 0;
  let c = sampleListCache.get(dir);
  if (!c || size < c.size) c = { size: 0, read: 0, entries: [] };
  if (size !== c.size) {
    const entries = c.entries.slice();
    try {
      const scan = await scanLines(file, LIMITS.sampleLine, (line) => {
        const s = stepOf(line);
        if (s !== null) entries.push({ step: s, kind: kindOfLine(line) });
      }, { start: c.read });
      c = { size, read: c.read + (scan?.read ?? 0), entries };
    } catch {
      return [];
    }
    sampleListCache.set(dir, c);
  }
  return c.entries;
}

/** A run directory as listed cheaply (synchronously: one bounded status.json read per run). */
export interface RunEntry {
  dir: string;
  name: string;
  status: RunStatus | null;
  statusError: string | null;
  state: EffectiveState;
  modified: number;
  /** why the run's files cannot be read safely (a symlink, a device, an over-long line), or null */
  unreadable: string | null;
}

/** A run directory with what the Runs view shows: its best reward and a check of its record files. */
export interface RunSummary extends RunEntry {
  bestReward: number | null;
}

/** Best (highest) mean reward of a run, read incrementally and cached by file size (appends are read
 * from where the last call stopped). Only the "reward/mean" field of each line is looked at. */
const bestRewardCache = new Map<string, { size: number; best: number | null }>();
const REWARD_KEY = Buffer.from('"reward/mean":');
export async function bestReward(dir: string): Promise<number | null> {
  const file = path.join(dir, METRICS_FILE);
  const size = fs.lstatSync(file, { throwIfNoEntry: false })?.size ?? 0;
  let entry = bestRewardCache.get(dir);
  if (!entry || size < entry.size) entry = { size: 0, best: null };
  if (size !== entry.size) {
    const e = entry;
    const scan = await scanLines(file, LIMITS.recordLine, (line) => {
      const at = opensObject(line) ? line.indexOf(REWARD_KEY) : -1;
      if (at < 0) return;
      const v = Number(/^\s*(-?[0-9.]+(?:[eE][-+]?\d+)?)/.exec(line.subarray(at + REWARD_KEY.length, at + REWARD_KEY.length + 40).toString('latin1'))?.[1]);
      if (Number.isFinite(v) && (e.best === null || v > e.best)) e.best = v;
    }, { start: entry.size });
    e.size += scan?.read ?? 0;
    bestRewardCache.set(dir, e);
  }
  return entry.best;
}

/** Every run directory (a folder holding status.json or config.json) under the runs folder, newest first.
 * Synchronous and cheap: the only file read is status.json, bounded; a symlinked run folder is not followed. */
export function listRuns(runsFolder: string): RunEntry[] {
  let names: string[];
  try {
    names = fs.readdirSync(runsFolder);
  } catch {
    return [];
  }
  const out: RunEntry[] = [];
  for (const name of names) {
    const dir = path.join(runsFolder, name);
    const st = fs.lstatSync(dir, { throwIfNoEntry: false });
    if (!st?.isDirectory()) continue;
    const has = (f: string) => fs.lstatSync(path.join(dir, f), { throwIfNoEntry: false }) !== undefined;
    if (!has(STATUS_FILE) && !has(CONFIG_FILE)) continue;
    let s: Checked<RunStatus> | null = null;
    let unreadable: string | null = null;
    try {
      s = readStatusStrict(dir);
    } catch (e) {
      unreadable = (e as Error).message;
    }
    const status = s?.ok ? s.value : null;
    out.push({ dir, name, status, statusError: s && !s.ok ? s.error : null, state: effectiveState(status), modified: (status?.updated_at ?? st.mtimeMs / 1000) * 1000, unreadable });
  }
  return out.sort((a, b) => b.modified - a.modified || a.name.localeCompare(b.name));
}

/** The Runs view's listing: listRuns plus each run's best reward and a check that its record files are
 * regular and their lines bounded; everything past status.json is read asynchronously, runs in parallel. */
export async function summarizeRuns(runsFolder: string): Promise<RunSummary[]> {
  return Promise.all(
    listRuns(runsFolder).map(async (r): Promise<RunSummary> => {
      let unreadable = r.unreadable;
      for (const [file, cap] of [[METRICS_FILE, LIMITS.recordLine], [EVENTS_FILE, LIMITS.recordLine], [SAMPLES_FILE, LIMITS.sampleLine]] as const) {
        unreadable ??= await jsonlProblem(path.join(r.dir, file), cap);
      }
      let best: number | null = null;
      if (!unreadable) best = await bestReward(r.dir).catch(() => null);
      return { ...r, unreadable, bestReward: best };
    }),
  );
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
  let found: Buffer | null = null;
  try {
    // The same test as listSampleSteps: the first "step" key of the line.
    await scanLines(path.join(dir, SAMPLES_FILE), LIMITS.sampleLine, (line) => {
      if (stepOf(line) === step) found = Buffer.from(line);
    });
  } catch (e) {
    return { ok: false, error: `unreadable: ${(e as Error).message}` };
  }
  if (found === null) return null;
  return parseLine((found as Buffer).toString('utf8'), (v) => {
    const c = checkGroupRecord(v);
    return c.ok && (v as { step?: unknown }).step !== step ? { ok: false, error: `no group logged at step ${step}` } : c;
  });
}

/** The question of a samples.jsonl line, read from the line's first 64 KiB (the trainer writes `step`, then
 * `question`) without decoding the group; null when it is not there. */
function questionOf(line: Buffer): string | null {
  if (!opensObject(line)) return null;
  const m = /"question"\s*:\s*("(?:[^"\\]|\\.)*")/.exec(line.subarray(0, 64 * 1024).toString('utf8'));
  if (!m) return null;
  try {
    return JSON.parse(m[1]) as string;
  } catch {
    return null;
  }
}

/**
 * The steps at which samples.jsonl logged a group of `question` (the prompt atlas opens them), read line by
 * line without decoding whole groups; `same` compares a logged question with the one asked for (the atlas
 * keeps very long questions as a prefix and a hash).
 */
export async function findQuestionSteps(dir: string, same: (logged: string) => boolean): Promise<number[]> {
  const steps: number[] = [];
  try {
    await scanLines(path.join(dir, SAMPLES_FILE), LIMITS.sampleLine, (line) => {
      const q = questionOf(line);
      const s = q !== null && same(q) ? stepOf(line) : null;
      if (s !== null && !steps.includes(s)) steps.push(s);
    });
  } catch {
    return steps;
  }
  return steps;
}

/** The question of the last logged group (to pre-fill "Sample Group"), from the file's tail. */
export function lastSampleQuestion(dir: string): string | null {
  let f: { fd: number; size: number } | null;
  try {
    f = openRegular(path.join(dir, SAMPLES_FILE));
  } catch {
    return null;
  }
  if (!f) return null;
  const { fd, size } = f;
  try {
    const len = Math.min(size, 4 * 1024 * 1024);
    const buf = Buffer.allocUnsafe(len);
    fs.readSync(fd, buf, 0, len, size - len);
    const lines = buf.toString('utf8').split('\n').filter((l) => l.trim());
    for (let i = lines.length - 1; i >= 0; i--) {
      if (!opensObject(lines[i])) continue;
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
