/**
 * A live run as the extension sees it, whichever way it is connected:
 *  - spawned: this window started the trainer; live records arrive on stdout, control goes over stdin;
 *  - attached: the trainer was found alive through its run directory (after a window reload or a restart);
 *    the run directory is tailed, and Stop is a SIGINT because there is no stdin to write to.
 * No `vscode` import; the controller in extension.ts turns these changes into UI.
 */
import * as path from 'node:path';
import type { LineProblem } from '../shared/jsonLines';
import { controlRequest, type ControlType, type GroupRecord, type InspectRequests, type InspectRequestType, type MetricsRow, type RunEvent, type RunStatus, type TrainerMessage } from '../shared/records';
import { PendingRequests, TrainerGoneError } from '../shared/requests';
import { eventsTail, metricsTail, newSamplesTail, readStatus, startEvalRow, trainerAlive, withStartRow, type JsonlTail } from '../rundir/runDir';
import type { LiveSummary } from './panelProtocol';
import { TrainerProcess } from './trainerProcess';

export type SessionChange =
  | { kind: 'status' }
  | { kind: 'metrics'; rows: MetricsRow[]; replaced: boolean }
  | { kind: 'event'; event: RunEvent }
  | { kind: 'group'; group: GroupRecord }
  | { kind: 'progress' }
  | { kind: 'problem'; problem: LineProblem; source: string }
  | { kind: 'stderr'; line: string }
  | { kind: 'exit'; code: number | null; signal: string | null; error: string | null };

export interface SessionOptions {
  onChange(c: SessionChange): void;
  pollMs?: number;
}

export class RunSession {
  status: RunStatus | null = null;
  readonly rows: MetricsRow[] = [];
  progress: { phase: string; step: number; total: number } | null = null;
  /** The newest group the run logged (samples.jsonl) since this session began, or null. */
  latestGroup: GroupRecord | null = null;
  ended = false;
  exitError: string | null = null;
  private readonly stderrTail: string[] = [];
  private proc: TrainerProcess | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly metrics;
  private readonly events;
  /** Re-attached only: samples.jsonl's new lines (a spawned run streams each group it logs). */
  private samples: JsonlTail<GroupRecord> | null = null;
  private readonly startedAt = Date.now() / 1000;
  private readonly requests = new PendingRequests('inspect');

  private constructor(readonly dir: string, readonly mode: 'spawned' | 'attached', private readonly opts: SessionOptions) {
    this.metrics = metricsTail(dir);
    this.events = eventsTail(dir);
  }

  get name(): string {
    return path.basename(this.dir);
  }
  get pid(): number | null {
    return this.proc?.pid ?? this.status?.pid ?? null;
  }

  /** Starts a trainer process for `dir` (`args` already hold `--run-dir dir`). */
  static spawn(dir: string, python: string, args: string[], env: { workspace?: string; trainerDir: string }, opts: SessionOptions): RunSession {
    const s = new RunSession(dir, 'spawned', opts);
    // A resumed run already has history: load it before the live stream adds to it.
    s.loadFromFiles();
    s.proc = TrainerProcess.start(python, args, env, {
      onMessage: (m) => s.onMessage(m),
      onProblem: (p) => opts.onChange({ kind: 'problem', problem: p, source: 'trainer stdout' }),
      onStderr: (line) => {
        s.stderrTail.push(line);
        if (s.stderrTail.length > 40) s.stderrTail.shift();
        opts.onChange({ kind: 'stderr', line });
      },
      onExit: (code, signal, err) => s.onExit(code, signal, err),
    });
    return s;
  }

  /** Re-attaches to a trainer that is alive but was started by an earlier window. */
  static attach(dir: string, opts: SessionOptions): RunSession {
    const s = new RunSession(dir, 'attached', opts);
    s.samples = newSamplesTail(dir);
    s.loadFromFiles();
    s.timer = setInterval(() => s.poll(), opts.pollMs ?? 1000);
    return s;
  }

  private loadFromFiles(): void {
    const st = readStatus(this.dir);
    if (st?.ok) this.status = st.value;
    this.readTails();
  }

  private readTails(): void {
    const m = this.metrics.read();
    if (m.restarted) this.rows.length = 0;
    if (m.records.length) this.addRows(m.records);
    m.problems.forEach((p) => this.opts.onChange({ kind: 'problem', problem: p, source: 'metrics.jsonl' }));
    const e = this.events.read();
    for (const ev of e.records) this.onEvent(ev);
    // a line torn by the moment of attaching, or garbage, costs a group of the live view, nothing else
    for (const g of this.samples?.read().records ?? []) this.onGroup(g);
  }

  private onGroup(group: GroupRecord): void {
    this.latestGroup = group;
    this.opts.onChange({ kind: 'group', group });
  }

  private onEvent(ev: RunEvent): void {
    this.opts.onChange({ kind: 'event', event: ev });
    const start = startEvalRow(ev);
    if (!start) return;
    // the start's evaluation goes first, whenever it is read (re-attaching reads the metrics before the events)
    const replaced = this.rows.some((r) => r.step !== 0); // GRPO rows are there: the listeners re-read them all
    this.rows.splice(0, this.rows.length, ...withStartRow(this.rows, start));
    this.opts.onChange({ kind: 'metrics', rows: [start], replaced });
  }

  private poll(): void {
    const st = readStatus(this.dir);
    if (st?.ok && st.value.updated_at !== this.status?.updated_at) {
      this.status = st.value;
      this.opts.onChange({ kind: 'status' });
    }
    this.readTails();
    const alive = trainerAlive(this.status);
    if (!alive) {
      const live = this.status?.state === 'running' || this.status?.state === 'paused';
      this.onExit(null, null, live ? new Error('the trainer process is gone without finishing (crashed or killed)') : undefined);
    }
  }

  /** Adds rows, replacing any with a step at or past the first new one (a resumed run re-does steps). */
  private addRows(rows: MetricsRow[]): void {
    let replaced = false;
    const first = rows[0].step;
    if (this.rows.length && this.rows[this.rows.length - 1].step >= first) {
      let i = this.rows.length;
      while (i > 0 && this.rows[i - 1].step >= first) i--;
      this.rows.length = i;
      replaced = true;
    }
    this.rows.push(...rows);
    this.opts.onChange({ kind: 'metrics', rows, replaced });
  }

  private onMessage(m: TrainerMessage): void {
    switch (m.type) {
      case 'status':
        this.status = m.status;
        this.opts.onChange({ kind: 'status' });
        break;
      case 'metrics':
        this.addRows([m.row]);
        break;
      case 'progress':
        this.progress = { phase: m.phase, step: m.step, total: m.total };
        this.opts.onChange({ kind: 'progress' });
        break;
      case 'event':
        this.onEvent(m.row);
        break;
      case 'samples':
        this.onGroup(m.row);
        break;
      case 'response':
        this.requests.handle(m);
        break;
      default:
        break;
    }
  }

  private onExit(code: number | null, signal: string | null, err?: Error): void {
    if (this.ended) return;
    this.ended = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    // The run directory is the truth: read the final status (the stream may have been cut short).
    const st = readStatus(this.dir);
    if (st?.ok) this.status = st.value;
    if (this.mode === 'attached') this.readTails();
    const failed = this.status?.state === 'failed' || this.status?.state === 'running' || this.status?.state === 'paused' || !this.status;
    this.requests.failAll((type) => `the trainer of run ${this.name} exited while answering ${type}${code !== null ? ` (code ${code})` : signal ? ` (${signal})` : ''}`);
    if (err) this.exitError = err.message;
    else if (failed && (code !== 0 || this.status?.state === 'failed')) {
      this.exitError = this.status?.error ?? (this.stderrTail.filter((l) => l.trim()).slice(-1)[0] || `the trainer exited with code ${code}${signal ? ` (${signal})` : ''}`);
    }
    this.opts.onChange({ kind: 'exit', code, signal, error: this.exitError });
  }

  /** How a control request was delivered: over stdin, as a signal (attached Stop), or not at all. */
  control(action: ControlType): 'sent' | 'signal' | 'unavailable' {
    if (this.ended) return 'unavailable';
    if (this.proc) return this.proc.send(controlRequest(action, `${action}-${Date.now()}`)) ? 'sent' : 'unavailable';
    if (action === 'stop' && this.status?.pid) {
      // Signal only the trainer this session attached to: the same token in status.json now, and the pid
      // still that process (host, start time, command line), never whatever process took the pid over.
      const now = readStatus(this.dir);
      if (!now?.ok || now.value.token !== this.status.token || !trainerAlive(now.value)) return 'unavailable';
      process.kill(now.value.pid as number, 'SIGINT');
      return 'signal';
    }
    return 'unavailable';
  }

  /** Whether inspection requests can go to this trainer (spawned by this window, still running). */
  get canRequest(): boolean {
    return !this.ended && this.proc !== null && this.proc.alive;
  }

  /**
   * An inspection request to the live trainer over stdin; it answers between optimizer steps (also
   * during SFT and while paused), so a slow step delays the answer.
   */
  request<K extends InspectRequestType>(type: K, params: InspectRequests[K]['params'], timeoutMs = 600_000): Promise<InspectRequests[K]['result']> {
    const proc = this.proc;
    if (!proc || this.ended) return Promise.reject(new TrainerGoneError(`run ${this.name} is not being trained by this window`));
    return this.requests.send(type, params, (line) => proc.write(line), timeoutMs, `the trainer of run ${this.name}`);
  }

  stderrLines(): string[] {
    return [...this.stderrTail];
  }

  /** The window is going away: stop listening but leave the trainer running (it is re-attached later). */
  dispose(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.proc?.detach();
  }

  summary(): LiveSummary {
    return summarize(this.name, this.status, this.rows, this.progress, {
      attached: this.mode === 'attached',
      ended: this.ended,
      error: this.exitError,
      now: Date.now() / 1000,
      startedAt: this.startedAt,
    });
  }
}

/** The compact summary (panel, status bar): pure, unit-tested. */
export function summarize(
  runName: string,
  status: RunStatus | null,
  rows: readonly MetricsRow[],
  progress: { phase: string; step: number; total: number } | null,
  o: { attached: boolean; ended: boolean; error: string | null; now: number; startedAt: number },
): LiveSummary {
  const last = rows.length ? rows[rows.length - 1] : null;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const phase = status?.phase ?? 'setup';
  const step = status?.step ?? last?.step ?? 0;
  const maxSteps = status?.max_steps ?? 0;
  let sftStep = status?.sft_step ?? null;
  let sftSteps = status?.sft_steps ?? null;
  if (progress && progress.phase === 'sft' && phase !== 'grpo' && phase !== 'done') {
    sftStep = Math.max(sftStep ?? 0, progress.step);
    sftSteps = progress.total;
  }
  let elapsed: number | null = null;
  let eta: number | null = null;
  if (phase === 'grpo' || phase === 'done') {
    elapsed = num(last?.elapsed);
    if (elapsed !== null && step > 0 && maxSteps > step) eta = (elapsed / step) * (maxSteps - step);
  } else {
    const t0 = status?.started_at ?? o.startedAt;
    elapsed = Math.max(0, (status?.ended_at ?? o.now) - t0);
    if (phase === 'sft' && sftStep && sftSteps && sftSteps > sftStep) eta = (elapsed / sftStep) * (sftSteps - sftStep);
  }
  const state: LiveSummary['state'] = status ? status.state : o.ended ? 'failed' : 'starting';
  return {
    runName,
    state: o.ended && o.error && (state === 'running' || state === 'paused') ? 'failed' : state,
    phase,
    attached: o.attached,
    step,
    maxSteps,
    sftStep,
    sftSteps,
    reward: num(last?.['reward/mean']),
    accuracy: num(last?.accuracy),
    kl: num(last?.kl),
    elapsed,
    eta,
    error: o.error ?? status?.error ?? null,
  };
}

/** Status-bar text: "SFT step N/M" during SFT, "step N · reward R" during GRPO. */
export function statusText(s: LiveSummary): string {
  const st = s.state === 'running' || s.state === 'starting' ? '' : ` (${s.state})`;
  if (s.phase === 'sft' && s.sftStep !== null) return `GRPO: SFT step ${s.sftStep}/${s.sftSteps ?? '?'}${st}`;
  if (s.phase === 'setup') return s.state === 'failed' ? 'GRPO: failed' : `GRPO: starting${st}`;
  const reward = s.reward === null ? '' : ` · reward ${s.reward.toFixed(3)}`;
  return `GRPO: step ${s.step}${s.maxSteps ? `/${s.maxSteps}` : ''}${reward}${st}`;
}
