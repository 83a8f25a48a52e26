/**
 * One writer per run directory. A trainer (or a TRL script using grpo's `attach()`) holds an exclusive flock
 * on `RUN/writer.lock` while it writes the run, and writes into it who it is: `{"pid", "host", "proc_start",
 * "since"}` (proc_start: /proc/PID/stat field 22, as status.json's). The kernel releases the lock when the
 * process ends but the file stays, so the file alone proves nothing: its holder is alive when it is on this
 * host and (on Linux) the pid's start time is the one recorded — the command line is not required to name
 * grpo, since any script using `attach()` holds the lock too. The file is untrusted data, read like every
 * run-directory file (regular file only, bounded). No `vscode` import: unit-tested with real processes.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { isObject, type Checked } from '../shared/guards';
import { isPidAlive, processIdentity, readSmallFile, UnreadableFile } from './runDir';

export const WRITER_LOCK_FILE = 'writer.lock';
/** What the trainer writes is about 100 bytes. */
export const WRITER_LOCK_LIMIT = 4096;

export interface WriterHolder {
  pid: number;
  host: string;
  /** clock ticks after boot when the holder started (Linux), or null */
  proc_start: number | null;
  /** when it took the lock (Unix seconds), or null */
  since: number | null;
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

export function checkWriterHolder(v: unknown): Checked<WriterHolder> {
  if (!isObject(v)) return { ok: false, error: 'not an object' };
  if (!Number.isInteger(v.pid) || (v.pid as number) <= 0) return { ok: false, error: "'pid' must be a positive integer" };
  if (typeof v.host !== 'string' || v.host.length > 256) return { ok: false, error: "'host' must be a host name" };
  if (v.proc_start !== undefined && v.proc_start !== null && !isNum(v.proc_start)) return { ok: false, error: "'proc_start' must be a number" };
  if (v.since !== undefined && v.since !== null && !isNum(v.since)) return { ok: false, error: "'since' must be a number" };
  return { ok: true, value: { pid: v.pid as number, host: v.host, proc_start: (v.proc_start as number | undefined) ?? null, since: (v.since as number | undefined) ?? null } };
}

/** Whether the recorded holder is still that process: this host, and (Linux) the pid started when recorded. */
export function holderAlive(h: WriterHolder, hostname: string = os.hostname()): boolean {
  if (h.host !== hostname) return false;
  if (process.platform !== 'linux') return isPidAlive(h.pid);
  const id = processIdentity(h.pid);
  return !!id && h.proc_start !== null && id.start === h.proc_start;
}

export type WriterState =
  /** no writer.lock: never written by a trainer that locks */
  | { state: 'none' }
  /** another process holds the run now */
  | { state: 'live'; holder: WriterHolder }
  /** the recorded holder is gone (or elsewhere, where this window cannot tell): the lock is free to the kernel */
  | { state: 'gone'; holder: WriterHolder }
  /** the file cannot be read safely, or does not hold a holder; the trainer decides when it starts */
  | { state: 'unreadable'; why: string };

/** Who writes run `dir` now, from its writer.lock. */
export function runWriter(dir: string, hostname: string = os.hostname()): WriterState {
  let text: string | null;
  try {
    text = readSmallFile(path.join(dir, WRITER_LOCK_FILE), WRITER_LOCK_LIMIT);
  } catch (e) {
    return { state: 'unreadable', why: e instanceof UnreadableFile ? e.message : `${WRITER_LOCK_FILE}: ${(e as Error).message}` };
  }
  if (text === null) return { state: 'none' };
  if (text.trim() === '') return { state: 'unreadable', why: `${WRITER_LOCK_FILE} is empty` };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { state: 'unreadable', why: `${WRITER_LOCK_FILE} is not JSON (${(e as Error).message})` };
  }
  const h = checkWriterHolder(value);
  if (!h.ok) return { state: 'unreadable', why: `${WRITER_LOCK_FILE}: ${h.error}` };
  return holderAlive(h.value, hostname) ? { state: 'live', holder: h.value } : { state: 'gone', holder: h.value };
}

/** The message when a run is not started because another process writes it. */
export function busyMessage(runName: string, h: WriterHolder, what = 'resumed'): string {
  return `GRPO: ${runName} is being written by another process (pid ${h.pid} on ${h.host.slice(0, 256)}); it was not ${what}.`;
}
