/**
 * One trainer process: spawned with an argument array (never a shell), stdout parsed as protocol lines,
 * stderr passed on line by line, control requests written to stdin. No `vscode` import.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { LineSplitter, TrainerStreamParser, type LineProblem } from '../shared/jsonLines';
import { encodeControl, type ControlRequest, type TrainerMessage } from '../shared/records';
import { trainerCwd, trainerEnv, workspaceArgs } from '../environment/python';

export interface TrainerHandlers {
  onMessage(m: TrainerMessage): void;
  onProblem(p: LineProblem): void;
  onStderr(line: string): void;
  onExit(code: number | null, signal: NodeJS.Signals | null, spawnError?: Error): void;
}

export class TrainerProcess {
  private exited = false;
  private constructor(private readonly child: ChildProcessWithoutNullStreams) {}

  /** `workspace`: the opened folder; relative paths in `args` resolve against it, but the process runs in
   * the trainer folder with a safe sys.path (python.ts trainerEnv), so nothing in it shadows a module. */
  static start(python: string, args: string[], opts: { workspace?: string; trainerDir: string }, h: TrainerHandlers): TrainerProcess {
    // detached: the trainer gets its own process group, so it outlives a window reload and can be
    // re-attached through its run directory (it keeps training when its stdin closes).
    const child = spawn(python, workspaceArgs(args, opts.workspace), { cwd: trainerCwd(opts.trainerDir), env: trainerEnv(opts.trainerDir, process.env, opts.workspace), shell: false, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    const p = new TrainerProcess(child);
    const parser = new TrainerStreamParser(h.onMessage, h.onProblem);
    const errLines = new LineSplitter();
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d: string) => parser.push(d));
    child.stdout.on('end', () => parser.end());
    child.stderr.on('data', (d: string) => errLines.push(d).forEach(h.onStderr));
    child.stdin.on('error', () => undefined); // a dead trainer's stdin: reported through onExit
    let spawnError: Error | undefined;
    child.on('error', (e) => {
      spawnError = e;
      if (child.pid === undefined && !p.exited) {
        p.exited = true;
        h.onExit(null, null, e);
      }
    });
    child.on('close', (code, signal) => {
      const rest = errLines.end();
      if (rest !== null) h.onStderr(rest);
      if (!p.exited) {
        p.exited = true;
        h.onExit(code, signal, spawnError);
      }
    });
    return p;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }
  get alive(): boolean {
    return !this.exited;
  }

  /** Writes one control request line; false when the process is gone. */
  send(req: ControlRequest): boolean {
    if (this.exited || !this.child.stdin.writable) return false;
    this.child.stdin.write(encodeControl(req));
    return true;
  }

  /** Writes one already-encoded request line (an inspection request); false when the process is gone. */
  write(line: string): boolean {
    if (this.exited || !this.child.stdin.writable) return false;
    this.child.stdin.write(line);
    return true;
  }

  /** Lets go of the process without stopping it (window closing): it keeps training. */
  detach(): void {
    this.child.stdout.removeAllListeners('data');
    this.child.stderr.removeAllListeners('data');
    this.child.unref();
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (!this.exited) this.child.kill(signal);
  }
}
