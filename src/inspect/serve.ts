/**
 * `python -m grpo serve --checkpoint DIR`: a long-lived trainer process that loads a checkpoint's policy
 * and its run's reference and answers inspection requests (sample_group, score, compare) on stdin.
 * Spawned with an argument array; ready when it prints its `started` line; every open request fails
 * with a clear message if it dies; killed on dispose. No `vscode` import.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as path from 'node:path';
import { LineSplitter, TrainerStreamParser } from '../shared/jsonLines';
import type { InspectRequests, InspectRequestType } from '../shared/records';
import { trainerCwd, trainerEnv } from '../environment/python';
import { PendingRequests, TrainerGoneError } from '../shared/requests';

export interface ServeInfo { checkpoint: string; step: number | null; pid: number; runDir: string | null }

export interface ServeOptions {
  trainerDir: string;
  /** the opened folder: where user modules are found (after installed packages); never the working directory */
  workspace?: string;
  onStderr?(line: string): void;
  /** false: `--no-user-code`, none of the code the run's settings name is imported (default true: the
   * trainer imports it, after saying which module from where) */
  userCode?: boolean;
  /** How long loading may take before giving up (torch + transformers import and two models). */
  startTimeoutMs?: number;
}

export class ServeProcess {
  readonly ready: Promise<ServeInfo>;
  private readonly requests = new PendingRequests('serve');
  private readonly stderrTail: string[] = [];
  private exited = false;
  private exitMessage: string | null = null;
  private info: ServeInfo | null = null;
  private readonly child: ChildProcessWithoutNullStreams;
  private lastUsed = Date.now();

  constructor(readonly python: string, readonly checkpoint: string, opts: ServeOptions) {
    const label = `the trainer's serve process for ${path.basename(checkpoint)}`;
    this.child = spawn(python, ['-m', 'grpo', 'serve', '--checkpoint', checkpoint, ...(opts.userCode === false ? ['--no-user-code'] : [])], {
      cwd: trainerCwd(opts.trainerDir), env: trainerEnv(opts.trainerDir, process.env, opts.workspace), shell: false, stdio: ['pipe', 'pipe', 'pipe'],
    });
    let readyResolve!: (i: ServeInfo) => void;
    let readyReject!: (e: Error) => void;
    this.ready = new Promise<ServeInfo>((res, rej) => {
      readyResolve = res;
      readyReject = rej;
    });
    this.ready.catch(() => undefined); // observed by callers; never an unhandled rejection here
    const startTimer = setTimeout(() => {
      readyReject(new TrainerGoneError(`${label} did not start within ${Math.round((opts.startTimeoutMs ?? 180_000) / 1000)} s`));
      this.dispose();
    }, opts.startTimeoutMs ?? 180_000);
    const parser = new TrainerStreamParser(
      (m) => {
        if (m.type === 'started' && !this.info) {
          this.info = { checkpoint: m.checkpoint ?? checkpoint, step: m.step ?? null, pid: m.pid, runDir: m.run_dir };
          clearTimeout(startTimer);
          readyResolve(this.info);
          return;
        }
        this.requests.handle(m);
      },
      (p) => opts.onStderr?.(`serve stdout line ${p.line}: ${p.error}: ${p.text}`),
    );
    const errLines = new LineSplitter();
    this.child.stdout.setEncoding('utf8');
    this.child.stderr.setEncoding('utf8');
    this.child.stdout.on('data', (d: string) => parser.push(d));
    this.child.stderr.on('data', (d: string) => errLines.push(d).forEach((l) => this.onStderr(l, opts)));
    this.child.stdin.on('error', () => undefined); // reported through 'close'
    this.child.on('error', (e: NodeJS.ErrnoException) => {
      if (this.child.pid === undefined) this.onExit(e.code === 'ENOENT' ? `${python} was not found` : e.message, readyReject, startTimer, label);
    });
    this.child.on('close', (code, signal) => {
      const rest = errLines.end();
      if (rest !== null) this.onStderr(rest, opts);
      const last = this.stderrTail.filter((l) => l.trim()).slice(-1)[0];
      this.onExit(`exited${code !== null ? ` with code ${code}` : ''}${signal ? ` (${signal})` : ''}${last ? `: ${last}` : ''}`, readyReject, startTimer, label);
    });
  }

  private onStderr(line: string, opts: ServeOptions): void {
    this.stderrTail.push(line);
    if (this.stderrTail.length > 40) this.stderrTail.shift();
    opts.onStderr?.(line);
  }

  private onExit(why: string, readyReject: (e: Error) => void, startTimer: NodeJS.Timeout, label: string): void {
    if (this.exited) return;
    this.exited = true;
    clearTimeout(startTimer);
    this.exitMessage = `${label} ${why}`;
    readyReject(new TrainerGoneError(this.info ? this.exitMessage : `${label} could not start: ${why}`));
    this.requests.failAll((type) => `${label} ${why} while answering ${type}`);
  }

  get alive(): boolean {
    return !this.exited;
  }
  get idleMs(): number {
    return this.requests.size ? 0 : Date.now() - this.lastUsed;
  }
  get pid(): number | undefined {
    return this.child.pid;
  }
  stderr(): string[] {
    return [...this.stderrTail];
  }

  async request<K extends InspectRequestType>(type: K, params: InspectRequests[K]['params'], timeoutMs = 300_000): Promise<InspectRequests[K]['result']> {
    await this.ready;
    this.lastUsed = Date.now();
    try {
      return await this.requests.send(type, params, (line) => {
        if (this.exited || !this.child.stdin.writable) return false;
        this.child.stdin.write(line);
        return true;
      }, timeoutMs, `the trainer's serve process for ${path.basename(this.checkpoint)}`);
    } finally {
      this.lastUsed = Date.now();
    }
  }

  /** Closes stdin (serve exits by itself) and makes sure it is gone soon after. */
  dispose(): void {
    if (this.exited) return;
    this.child.stdin.end();
    const pid = this.child.pid;
    const t = setTimeout(() => {
      if (!this.exited && pid) this.child.kill('SIGKILL');
    }, 3000);
    t.unref();
    this.child.kill('SIGTERM');
  }

  /** Kills it now (tests; a trainer that must die mid-request). */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (!this.exited) this.child.kill(signal);
  }
}
