/**
 * JSON-lines handling shared by the live stream (trainer stdout) and the run directory's .jsonl files.
 *
 * Rules (docs/run-directory.md): every record is one whole line. A line that does not parse is reported,
 * never fatal; a torn last line (no trailing newline, e.g. after a crash mid-write) is held back until
 * more bytes arrive, and reported only if the stream ends with it.
 */
import { checkTrainerMessage, type Checked, type TrainerMessage } from './records';

export interface LineProblem {
  /** 1-based line number within the stream or file. */
  line: number;
  text: string;
  error: string;
}

/** Splits a text stream into lines; `\r\n` is accepted. The unterminated remainder is kept. */
export class LineSplitter {
  private rest = '';
  push(chunk: string): string[] {
    const text = this.rest + chunk;
    const parts = text.split('\n');
    this.rest = parts.pop() ?? '';
    return parts.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  }
  /** The unterminated remainder, if any (a torn last line). */
  end(): string | null {
    const r = this.rest;
    this.rest = '';
    return r.trim() === '' ? null : r;
  }
}

/** Parses one line as JSON and validates it; `Checked` carries a message for the log otherwise. */
export function parseLine<T>(text: string, check: (v: unknown) => Checked<T>): Checked<T> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { ok: false, error: `not JSON (${(e as Error).message})` };
  }
  return check(value);
}

const clip = (s: string) => (s.length > 200 ? s.slice(0, 200) + '…' : s);

/**
 * The trainer's stdout, chunk by chunk. Valid protocol messages go to `onMessage`; garbage, torn or
 * invalid lines go to `onProblem` (the caller logs them) and parsing carries on.
 */
export class TrainerStreamParser {
  private readonly splitter = new LineSplitter();
  private lineNo = 0;
  constructor(
    private readonly onMessage: (m: TrainerMessage) => void,
    private readonly onProblem: (p: LineProblem) => void,
  ) {}

  push(chunk: string): void {
    for (const line of this.splitter.push(chunk)) this.handle(line);
  }

  /** The stream closed: a remaining unterminated line is torn (reported, never parsed as a message). */
  end(): void {
    const rest = this.splitter.end();
    if (rest !== null) this.onProblem({ line: this.lineNo + 1, text: clip(rest), error: 'torn line at end of stream (no newline)' });
  }

  private handle(line: string): void {
    this.lineNo++;
    if (line.trim() === '') return;
    const r = parseLine(line, checkTrainerMessage);
    if (r.ok) this.onMessage(r.value);
    else this.onProblem({ line: this.lineNo, text: clip(line), error: r.error });
  }
}

export interface JsonlChunk<T> {
  records: T[];
  problems: LineProblem[];
  /** Bytes consumed: up to and including the last newline; a torn tail is left for the next read. */
  consumed: number;
  /** True when bytes after the last newline were left unread (a torn or still-being-written line). */
  tornTail: boolean;
}

/**
 * Parses a buffer of a .jsonl file read from some byte offset. Only whole lines are decoded (so a
 * multi-byte character split by a concurrent write is never mangled). `firstLine` numbers lines.
 */
export function parseJsonlBuffer<T>(buf: Uint8Array, check: (v: unknown) => Checked<T>, firstLine = 1): JsonlChunk<T> {
  const lastNl = buf.lastIndexOf(10);
  const consumed = lastNl + 1;
  const text = new TextDecoder().decode(buf.subarray(0, consumed));
  const records: T[] = [];
  const problems: LineProblem[] = [];
  const lines = consumed > 0 ? text.slice(0, -1).split('\n') : [];
  lines.forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') return;
    const r = parseLine(line, check);
    if (r.ok) records.push(r.value);
    else problems.push({ line: firstLine + i, text: clip(line), error: r.error });
  });
  return { records, problems, consumed, tornTail: consumed < buf.length };
}

/** Counts lines in a byte range (to keep line numbers right across incremental reads). */
export function countNewlines(buf: Uint8Array, end = buf.length): number {
  let n = 0;
  for (let i = 0; i < end; i++) if (buf[i] === 10) n++;
  return n;
}
