/**
 * Inspection requests over a trainer's stdin (a live `train` process or `python -m grpo serve`): ids,
 * timeouts, validation of the answer, and failing every open request when the process goes away.
 * No `vscode` import; unit-tested.
 */
import { encodeRequest, INSPECT_RESULT_CHECKS, type InspectRequests, type InspectRequestType, type TrainerMessage } from './records';

/** A request the trainer answered with `ok: false` (bad input): its message is meant for the user. */
export class TrainerRequestError extends Error {}
/** The process went away, did not answer in time, or answered something invalid. */
export class TrainerGoneError extends Error {}

interface Pending {
  type: InspectRequestType;
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

export class PendingRequests {
  private seq = 0;
  private readonly pending = new Map<string, Pending>();
  constructor(private readonly prefix = 'req') {}

  get size(): number {
    return this.pending.size;
  }

  /**
   * Registers a request and returns its stdin line; `write` sends it (false: the process is gone).
   * The promise settles with the validated result, a TrainerRequestError (ok:false), or a
   * TrainerGoneError (timeout, process exit, invalid answer).
   */
  send<K extends InspectRequestType>(type: K, params: InspectRequests[K]['params'], write: (line: string) => boolean, timeoutMs: number, what: string): Promise<InspectRequests[K]['result']> {
    const id = `${this.prefix}-${++this.seq}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new TrainerGoneError(`${what} did not answer ${type} within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      this.pending.set(id, { type, resolve: resolve as (v: unknown) => void, reject, timer });
      if (!write(encodeRequest(type, id, params))) this.settleError(id, new TrainerGoneError(`${what} is not running, so ${type} could not be sent`));
    });
  }

  /** Handles one message from the process; true when it answered one of our requests. */
  handle(m: TrainerMessage): boolean {
    if (m.type !== 'response' || typeof m.id !== 'string') return false;
    const p = this.pending.get(m.id);
    if (!p) return false;
    this.pending.delete(m.id);
    clearTimeout(p.timer);
    if (!m.ok) {
      p.reject(new TrainerRequestError(m.error ?? `${p.type} failed without a message`));
      return true;
    }
    const checked = INSPECT_RESULT_CHECKS[p.type](m.result);
    if (checked.ok) p.resolve(checked.value);
    else p.reject(new TrainerGoneError(`the trainer's answer to ${p.type} is invalid: ${checked.error}`));
    return true;
  }

  /** Cancels one request locally (the trainer may still compute it; its late answer is dropped). */
  private settleError(id: string, e: Error): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.reject(e);
  }

  /** The process is gone: every open request fails with `message` (naming what it was answering). */
  failAll(message: (type: InspectRequestType) => string): void {
    for (const [id, p] of [...this.pending]) this.settleError(id, new TrainerGoneError(message(p.type)));
  }
}
