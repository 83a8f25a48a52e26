/**
 * Answers that follow typing: work started once the input has been still for `delayMs`, one at a time, and
 * only the answer for the newest input delivered. An input that changes while its work is in flight makes
 * that work stale: its answer is dropped (never shown), and the newest input is sent as soon as the stale
 * work settles — a trainer answers requests one at a time, so a second request sent at once would only wait
 * behind the first. Pure (timers injectable); no `vscode`.
 */

export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const REAL_TIMERS: Timers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

export class LatestOnly<T> {
  private timer: unknown = null;
  /** bumped by every change: work started at an older generation is stale */
  private generation = 0;
  private busy = false;
  /** a change arrived while work was in flight and its delay has passed: start as soon as it settles */
  private queued = false;
  private disposed = false;

  /**
   * `start(generation)` begins the work for the current input; `deliver(outcome, generation)` receives its
   * answer only while no newer change has arrived. `onStale(generation)`, when given, hears of work whose
   * answer was dropped.
   */
  constructor(
    private readonly delayMs: number,
    private readonly start: (generation: number) => Promise<T>,
    private readonly deliver: (outcome: Outcome<T>, generation: number) => void,
    private readonly timers: Timers = REAL_TIMERS,
    private readonly onStale?: (generation: number) => void,
  ) {}

  /** The input changed: (re)start the quiet period; any work in flight is now stale. */
  changed(): void {
    if (this.disposed) return;
    this.generation++;
    if (this.timer !== null) this.timers.clear(this.timer);
    this.timer = this.timers.set(() => {
      this.timer = null;
      if (this.busy) this.queued = true;
      else this.launch();
    }, this.delayMs);
  }

  /** Whether work is in flight or waiting to start. */
  get pending(): boolean {
    return this.busy || this.queued || this.timer !== null;
  }

  private launch(): void {
    if (this.disposed) return;
    const generation = this.generation;
    this.busy = true;
    let work: Promise<T>;
    try {
      work = this.start(generation);
    } catch (error) {
      work = Promise.reject(error);
    }
    const settle = (outcome: Outcome<T>) => {
      this.busy = false;
      if (this.disposed) return;
      if (generation === this.generation) this.deliver(outcome, generation);
      else this.onStale?.(generation);
      if (this.queued) {
        this.queued = false;
        this.launch();
      }
    };
    work.then((value) => settle({ ok: true, value }), (error: unknown) => settle({ ok: false, error }));
  }

  dispose(): void {
    this.disposed = true;
    if (this.timer !== null) this.timers.clear(this.timer);
    this.timer = null;
  }
}
