/**
 * Making a Python environment for the trainer ("GRPO: Set Up Python Environment"). No `vscode` import: the
 * command (src/environment/envSetup.ts) passes in paths, choices and callbacks; unit-tested with real interpreters and pip
 * against a local wheel directory.
 *
 * Steps: find a Python ≥ 3.10 that can make venvs → create the venv (or reuse one) → [torch from the CPU
 * wheel index] → `pip install -r requirements.txt` → the extension's own import check. A marker file in the
 * venv says `complete: false` from the first step until the check passes, so a half-made environment (a
 * failed or cancelled set-up) is refused by `checkInterpreter` and never selected.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkInterpreter, findOnPath, SETUP_MARKER, type SetupMarker } from './python';

export const DEFAULT_TORCH_CPU_INDEX = 'https://download.pytorch.org/whl/cpu';
export const MIN_PYTHON: [number, number] = [3, 10];
const IS_WIN = process.platform === 'win32';

export type Step = 'python' | 'venv' | 'torch' | 'requirements' | 'check';
export const STEP_LABEL: Record<Step, string> = {
  python: 'find Python ≥ 3.10',
  venv: 'create the virtual environment',
  torch: 'install torch',
  requirements: 'install the trainer requirements',
  check: 'check the environment',
};

/** A failed step: `message` says what happened, `hint` what to do. */
export class SetupError extends Error {
  constructor(readonly step: Step, message: string, readonly hint: string) {
    super(`${STEP_LABEL[step]}: ${message}`);
  }
}
export class SetupCancelled extends Error {
  constructor(readonly step: Step) {
    super(`cancelled while trying to ${STEP_LABEL[step]}`);
  }
}

export function venvPython(venvDir: string): string {
  return IS_WIN ? path.join(venvDir, 'Scripts', 'python.exe') : path.join(venvDir, 'bin', 'python');
}

export function fileSha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

// --- Where torch comes from --------------------------------------------------------------------------

export type TorchSource = { kind: 'pypi'; why: string } | { kind: 'index'; url: string; why: string };

/**
 * PyPI's Linux torch wheel is the CUDA build (several GB of NVIDIA libraries); its macOS and Windows wheels
 * are CPU builds already. So only a Linux machine without an NVIDIA GPU takes torch from the CPU index.
 */
export function chooseTorchSource(o: { platform: NodeJS.Platform; nvidiaGpu: boolean; cpuIndex: string }): TorchSource {
  if (o.platform !== 'linux') return { kind: 'pypi', why: `PyPI's torch for ${o.platform} is the CPU build` };
  if (o.nvidiaGpu) return { kind: 'pypi', why: 'nvidia-smi found a GPU: PyPI\'s torch (CUDA build)' };
  if (!o.cpuIndex) return { kind: 'pypi', why: 'no CPU wheel index set (grpo.setup.torchIndexUrl is empty): PyPI\'s torch (CUDA build)' };
  return { kind: 'index', url: o.cpuIndex, why: `no NVIDIA GPU: the CPU build from ${o.cpuIndex}` };
}

/** True when `nvidia-smi -L` (on PATH) lists a GPU. */
export async function hasNvidiaGpu(envPath = process.env.PATH ?? ''): Promise<boolean> {
  const smi = findOnPath('nvidia-smi', envPath);
  if (!smi) return false;
  const r = await run(smi, ['-L'], { timeoutMs: 15_000 });
  return r.code === 0 && /GPU \d/.test(r.output);
}

/** The torch version pinned in a requirements file (`torch==2.11.0` → '2.11.0'), if any. */
export function torchPin(requirements: string): string | undefined {
  return /^\s*torch\s*==\s*([\w.+!-]+)\s*(?:#.*)?$/m.exec(requirements)?.[1];
}

// --- pip's output ------------------------------------------------------------------------------------

/** The phase a line of pip's output starts, for the progress notification (undefined: not a phase line). */
export function pipPhase(line: string): string | undefined {
  let m: RegExpExecArray | null;
  if ((m = /^Collecting (\S+)/.exec(line))) return `Collecting ${m[1]}`;
  if ((m = /^\s*Downloading (\S+)(?: \(([^)]+)\))?/.exec(line))) return `Downloading ${baseName(m[1])}${m[2] ? ` (${m[2]})` : ''}`;
  if ((m = /^\s*Using cached (\S+)/.exec(line))) return `Using cached ${baseName(m[1])}`;
  if ((m = /^Processing (\S+)/.exec(line))) return `Processing ${baseName(m[1])}`;
  if ((m = /^Requirement already satisfied: (\S+)/.exec(line))) return `Already installed: ${m[1]}`;
  if ((m = /^Installing collected packages: (.*)$/.exec(line))) {
    const names = m[1].split(',').map((s) => s.trim()).filter(Boolean);
    return `Installing ${names.length} package${names.length === 1 ? '' : 's'} (${names.slice(0, 4).join(', ')}${names.length > 4 ? ', …' : ''})`;
  }
  if (/^Successfully installed /.test(line)) return 'Installed';
  return undefined;
}

function baseName(s: string): string {
  return s.split(/[\\/]/).pop() ?? s;
}

const NETWORK = /NewConnectionError|Failed to establish a new connection|Temporary failure in name resolution|Name or service not known|nodename nor servname|Network is unreachable|Connection refused|ConnectTimeoutError|ReadTimeoutError|ProxyError|SSLError|ConnectionResetError/;
const DISK_FULL = /No space left on device|\[Errno 28\]|ENOSPC|disk quota exceeded/i;

/** Turns a failed pip (or venv) run into what happened and what to do. */
export function explainFailure(step: Step, output: string, where: string): SetupError {
  if (DISK_FULL.test(output)) {
    return new SetupError(step, `the disk is full (No space left on device) under ${where}`,
      'Free some space (with PyPI\'s CUDA torch the environment takes about 5.5 GB, with the CPU build much less) or pick the other location, then run "GRPO: Set Up Python Environment" again.');
  }
  if (NETWORK.test(output)) {
    const line = output.split('\n').find((l) => NETWORK.test(l))?.trim() ?? '';
    return new SetupError(step, `no network: pip could not reach the package index (${line.slice(0, 200)})`,
      'Check the connection or the proxy (pip honours HTTPS_PROXY and pip.conf; an offline wheel folder can be given with grpo.setup.pipArgs, e.g. ["--no-index", "--find-links", "/path/to/wheels"]), then run the command again.');
  }
  const lines = output.split('\n').map((l) => l.trim()).filter(Boolean);
  const err = lines.filter((l) => /^ERROR:|Error:|error:/.test(l)).pop() ?? lines.pop() ?? 'no output';
  return new SetupError(step, err.slice(0, 400), 'The full output is in the "GRPO Trainer" log; fix the cause and run "GRPO: Set Up Python Environment" again.');
}

// --- Processes ---------------------------------------------------------------------------------------

interface RunOptions { signal?: AbortSignal; onLine?: (line: string) => void; env?: NodeJS.ProcessEnv; timeoutMs?: number }
interface RunResult { code: number | null; output: string; cancelled: boolean }

/**
 * Runs a command (argument array, no shell) in its own process group, streaming lines; aborting `signal`
 * kills the whole tree (pip's build subprocesses included). Keeps the last 400 lines for error messages.
 */
export function run(cmd: string, args: string[], o: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    if (o.signal?.aborted) return resolve({ code: null, output: '', cancelled: true });
    const child = spawn(cmd, args, { shell: false, detached: !IS_WIN, stdio: ['ignore', 'pipe', 'pipe'], env: o.env ?? process.env, windowsHide: true });
    const tail: string[] = [];
    let cancelled = false;
    let partial = { out: '', err: '' };
    const take = (which: 'out' | 'err') => (d: Buffer) => {
      const parts = (partial[which] + d.toString()).split(/\r?\n|\r/);
      partial[which] = parts.pop() ?? '';
      for (const l of parts) line(l);
    };
    const line = (l: string) => {
      tail.push(l);
      if (tail.length > 400) tail.shift();
      o.onLine?.(l);
    };
    const kill = () => {
      cancelled = true;
      killTree(child.pid);
    };
    const timer = o.timeoutMs ? setTimeout(kill, o.timeoutMs) : undefined;
    o.signal?.addEventListener('abort', kill, { once: true });
    child.stdout.on('data', take('out'));
    child.stderr.on('data', take('err'));
    child.on('error', (e) => {
      // Could not start (ENOENT, EACCES): an exit without a code, the reason as its last line.
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', kill);
      tail.push(`cannot run ${cmd}: ${e.message}`);
      resolve({ code: null, output: tail.join('\n'), cancelled: false });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', kill);
      if (partial.out) line(partial.out);
      if (partial.err) line(partial.err);
      partial = { out: '', err: '' };
      resolve({ code, output: tail.join('\n'), cancelled });
    });
  });
}

function killTree(pid: number | undefined): void {
  if (!pid) return;
  if (IS_WIN) {
    spawn('taskkill', ['/PID', String(pid), '/T', '/F'], { shell: false, stdio: 'ignore', windowsHide: true }).on('error', () => undefined);
    return;
  }
  try {
    process.kill(-pid, 'SIGTERM');
  } catch {
    return; // already gone
  }
  setTimeout(() => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }, 3000).unref();
}

// --- Finding the base Python -------------------------------------------------------------------------

const PROBE = 'import sys; print("%d.%d.%d" % sys.version_info[:3]); import venv, ensurepip';

export interface BasePython { python: string; version: string }

/**
 * The first of `names` on PATH (default: python3, python, python3.13 … python3.10) that is ≥ 3.10 and can
 * make venvs (Debian's python3 cannot without python3-venv: ensurepip is missing).
 */
export async function findBasePython(o: { names?: string[]; envPath?: string; signal?: AbortSignal } = {}): Promise<BasePython> {
  const names = o.names ?? ['python3', 'python', 'python3.13', 'python3.12', 'python3.11', 'python3.10'];
  const tried: string[] = [];
  const seen = new Set<string>();
  for (const name of names) {
    const exe = path.isAbsolute(name) ? name : findOnPath(name, o.envPath);
    if (!exe || seen.has(exe)) continue;
    seen.add(exe);
    const r = await run(exe, ['-c', PROBE], { signal: o.signal, timeoutMs: 30_000 });
    if (r.cancelled && o.signal?.aborted) throw new SetupCancelled('python');
    const version = /^(\d+)\.(\d+)\.\d+/m.exec(r.output);
    if (!version) {
      tried.push(`${exe}: does not run (${r.output.trim().split('\n').pop() ?? ''})`);
      continue;
    }
    const [major, minor] = [Number(version[1]), Number(version[2])];
    if (major < MIN_PYTHON[0] || (major === MIN_PYTHON[0] && minor < MIN_PYTHON[1])) {
      tried.push(`${exe}: ${version[0]} is too old`);
      continue;
    }
    if (r.code !== 0) {
      tried.push(`${exe}: ${version[0]} cannot make virtual environments (no venv/ensurepip module${process.platform === 'linux' ? `; Debian/Ubuntu: apt install python${major}.${minor}-venv` : ''})`);
      continue;
    }
    return { python: exe, version: version[0] };
  }
  throw new SetupError('python', tried.length ? `no usable Python ≥ 3.10 (${tried.join('; ')})` : `no Python on PATH (looked for ${names.join(', ')})`,
    'Install Python 3.10 or newer with its venv module (python.org, or e.g. `apt install python3.11 python3.11-venv`), make sure it is on PATH for VS Code, then run "GRPO: Set Up Python Environment" again.');
}

// --- The set-up --------------------------------------------------------------------------------------

export interface SetupOptions {
  /** The venv folder (created, or reused when it already is a venv). */
  target: string;
  /** The pinned requirements (the trainer's requirements.txt shipped with the extension). */
  requirements: string;
  /** The extension's trainer/ folder, for the import check. */
  trainerDir: string;
  torch: TorchSource;
  /** Extra `pip install` arguments (an offline wheel folder, a mirror). */
  pipArgs?: string[];
  /** Base Python names or paths to try (default: see findBasePython). */
  basePythons?: string[];
  envPath?: string;
  signal?: AbortSignal;
  /** A step starts (and pip's phases within it). */
  onProgress?: (step: Step, detail?: string) => void;
  /** Every line the child processes print. */
  onOutput?: (line: string) => void;
  /** A warning the user should see (e.g. the CPU index is unreachable). */
  onWarning?: (message: string) => void;
}

export interface SetupResult { python: string; versions: string; base: string; torch: string }

export async function setupEnvironment(o: SetupOptions): Promise<SetupResult> {
  const step = (s: Step, detail?: string) => {
    if (o.signal?.aborted) throw new SetupCancelled(s);
    o.onProgress?.(s, detail);
  };
  const requirementsText = fs.readFileSync(o.requirements, 'utf8');
  const sha = fileSha256(o.requirements);
  const python = venvPython(o.target);
  const pipEnv = { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: '1', PIP_NO_INPUT: '1', PYTHONUNBUFFERED: '1' };
  const writeMarker = (m: Omit<SetupMarker, 'updated' | 'requirementsSha256'>) => {
    try {
      fs.writeFileSync(path.join(o.target, SETUP_MARKER), JSON.stringify({ ...m, requirementsSha256: sha, updated: new Date().toISOString() }, null, 1) + '\n');
    } catch (e) {
      throw explainFailure(m.complete ? 'check' : 'venv', (e as Error).message, o.target);
    }
  };

  // 1. A base Python ≥ 3.10; when the target already is a venv, its own interpreter must be one.
  step('python');
  const reuse = fs.existsSync(path.join(o.target, 'pyvenv.cfg')) && fs.existsSync(python);
  const base = await findBasePython({ names: reuse ? [python] : o.basePythons, envPath: o.envPath, signal: o.signal });
  if (!reuse && fs.existsSync(o.target) && fs.readdirSync(o.target).length > 0) {
    throw new SetupError('venv', `${o.target} exists and is not a virtual environment`, 'Move it away or pick the other location, then run the command again.');
  }

  // 2. The venv, marked unfinished before anything is installed into it.
  step('venv', reuse ? `reusing ${o.target}` : `${base.python} (${base.version}) -m venv ${o.target}`);
  if (!reuse) {
    try {
      fs.mkdirSync(path.dirname(o.target), { recursive: true });
    } catch (e) {
      throw explainFailure('venv', (e as Error).message, path.dirname(o.target));
    }
    const r = await run(base.python, ['-m', 'venv', o.target], { signal: o.signal, onLine: o.onOutput });
    if (r.cancelled) throw new SetupCancelled('venv');
    if (r.code !== 0) throw explainFailure('venv', r.output, o.target);
  }
  let torch = o.torch;
  writeMarker({ complete: false, torch: torch.kind === 'index' ? torch.url : 'pypi', basePython: base.python });

  const pip = async (s: Step, args: string[]) => {
    const r = await run(python, ['-m', 'pip', 'install', '--progress-bar', 'off', ...(o.pipArgs ?? []), ...args], {
      signal: o.signal, env: pipEnv,
      onLine: (l) => {
        o.onOutput?.(l);
        const phase = pipPhase(l);
        if (phase) o.onProgress?.(s, phase);
      },
    });
    if (r.cancelled) throw new SetupCancelled(s);
    if (r.code !== 0) throw explainFailure(s, r.output, o.target);
  };

  // 3. torch's CPU build first, when that is the choice; requirements.txt's pin is then already satisfied.
  const pin = torchPin(requirementsText);
  if (torch.kind === 'index' && pin) {
    step('torch', `checking ${torch.url}`);
    const reach = await reachable(python, torch.url, o.signal);
    if (reach !== true) {
      o.onWarning?.(`PyTorch's CPU wheel index ${torch.url} is not reachable (${reach}): installing torch from PyPI instead, which on Linux is the CUDA build with several GB of NVIDIA libraries. ` +
        'Set grpo.setup.torchIndexUrl (or GRPO_TORCH_INDEX_URL) to a reachable mirror of the CPU index to avoid that.');
      torch = { kind: 'pypi', why: `${torch.url} unreachable: PyPI's torch (CUDA build)` };
      writeMarker({ complete: false, torch: 'pypi', basePython: base.python });
    } else {
      step('torch', `torch ${pin} (CPU build)`);
      await pip('torch', ['--index-url', torch.url, `torch==${pin}`]);
    }
  }

  // 4. Everything else, pinned.
  step('requirements');
  await pip('requirements', ['-r', o.requirements]);

  // 5. The extension's own import check, then the marker says it is done.
  step('check');
  const checked = await checkInterpreter(python, o.trainerDir, { ignoreMarker: true });
  if (!checked.ok) {
    throw new SetupError('check', `${python} cannot run the trainer: ${checked.reason}`, 'The full output is in the "GRPO Trainer" log; run "GRPO: Set Up Python Environment" again (it reuses what is installed).');
  }
  writeMarker({ complete: true, torch: torch.kind === 'index' ? torch.url : 'pypi', basePython: base.python });
  return { python, versions: checked.versions, base: base.python, torch: torch.why };
}

/** Whether the venv's Python reaches `url` (urllib honours HTTPS_PROXY like pip does): true, or the reason. */
async function reachable(python: string, url: string, signal?: AbortSignal): Promise<true | string> {
  const probe = 'import sys, urllib.request\ntry:\n urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=10).close()\nexcept Exception as e:\n print(e); sys.exit(1)';
  const r = await run(python, ['-c', probe, url], { signal, timeoutMs: 30_000 });
  if (r.cancelled && signal?.aborted) throw new SetupCancelled('torch');
  return r.code === 0 ? true : r.output.trim().split('\n').pop() || (r.cancelled ? 'timed out' : `exit ${r.code}`);
}
