/**
 * Finding a Python that can run the trainer. No `vscode` import: the caller passes in what the editor
 * knows (the setting, the Python extension's interpreter); unit-tested with real interpreters.
 *
 * Order: `grpo.pythonPath` → the Python extension's active interpreter → `.venv` in the workspace →
 * `python3` on PATH. A candidate is accepted only if `import torch, transformers, grpo` works with
 * PYTHONPATH set to the extension's `trainer/` folder. An explicit `grpo.pythonPath` that fails is an
 * error (no silent fallback past what the user asked for).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export type CandidateSource = 'setting' | 'python-extension' | 'workspace-venv' | 'path';
export interface Candidate { python: string; source: CandidateSource }

export interface DiscoveryInputs {
  /** `grpo.pythonPath` as written in settings (may be relative, `~/…` or use `${workspaceFolder}`). */
  setting?: string;
  /** The Python extension's active interpreter, when that extension is installed. */
  pythonExtension?: () => Promise<string | undefined>;
  workspaceFolders: string[];
  /** PATH to search for python3 (defaults to process.env.PATH). */
  envPath?: string;
  /** `vscode.env.remoteName` in a remote window (Remote-SSH, WSL, a container). */
  remoteName?: string;
}

export const SOURCE_LABEL: Record<CandidateSource, string> = {
  setting: 'grpo.pythonPath',
  'python-extension': 'Python extension',
  'workspace-venv': 'workspace .venv',
  path: 'python3 on PATH',
};

const IS_WIN = process.platform === 'win32';

export function resolveSettingPath(setting: string, workspaceFolders: string[]): string {
  let p = setting.trim();
  const ws = workspaceFolders[0];
  if (ws) p = p.replace(/\$\{workspaceFolder\}/g, ws);
  if (p === '~' || p.startsWith('~/')) p = path.join(os.homedir(), p.slice(1));
  // A bare command name ("python3") is looked up on PATH; anything with a separator is a path.
  if (!p.includes('/') && !p.includes('\\')) return p;
  return path.isAbsolute(p) || !ws ? p : path.resolve(ws, p);
}

export function findOnPath(name: string, envPath = process.env.PATH ?? ''): string | undefined {
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) continue;
    for (const ext of IS_WIN ? ['.exe', ''] : ['']) {
      const full = path.join(dir, name + ext);
      try {
        fs.accessSync(full, fs.constants.X_OK);
        if (fs.statSync(full).isFile()) return full;
      } catch {
        /* not here */
      }
    }
  }
  return undefined;
}

export async function listCandidates(inputs: DiscoveryInputs): Promise<Candidate[]> {
  const out: Candidate[] = [];
  if (inputs.setting?.trim()) {
    const p = resolveSettingPath(inputs.setting, inputs.workspaceFolders);
    out.push({ python: p.includes('/') || p.includes('\\') ? p : findOnPath(p, inputs.envPath) ?? p, source: 'setting' });
    return out;
  }
  if (inputs.pythonExtension) {
    try {
      const p = await inputs.pythonExtension();
      if (p) out.push({ python: p, source: 'python-extension' });
    } catch {
      /* the Python extension is optional */
    }
  }
  for (const ws of inputs.workspaceFolders) {
    const venv = IS_WIN ? path.join(ws, '.venv', 'Scripts', 'python.exe') : path.join(ws, '.venv', 'bin', 'python');
    if (fs.existsSync(venv)) out.push({ python: venv, source: 'workspace-venv' });
  }
  out.push({ python: findOnPath('python3', inputs.envPath) ?? 'python3', source: 'path' });
  // The same interpreter reached twice is checked once.
  return out.filter((c, i) => out.findIndex((d) => d.python === c.python) === i);
}

export type CheckResult = { ok: true; versions: string } | { ok: false; reason: string };

/** Written into a venv by "GRPO: Set Up Python Environment" (src/environment/pythonEnv.ts): `complete` only at the end. */
export const SETUP_MARKER = 'grpo-studio-setup.json';
export interface SetupMarker { complete: boolean; requirementsSha256: string; torch: string; basePython: string; updated: string }

/** The set-up marker of the venv `python` lives in (undefined: not a venv made by the set-up command). */
export function readSetupMarker(python: string): SetupMarker | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(path.dirname(path.dirname(python)), SETUP_MARKER), 'utf8')) as SetupMarker;
  } catch {
    return undefined;
  }
}

/**
 * The environment of every Python process the extension starts: the trainer first on PYTHONPATH, and
 * PYTHONSAFEPATH=1 (Python ≥ 3.11, which the trainer needs) so the working directory is never put on
 * sys.path. `workspace` (GRPO_WORKSPACE) is where the trainer finds user modules such as a
 * reward_function's, appended after every installed package: a `grpo/` or `torch.py` in the opened folder
 * cannot shadow the real modules.
 */
export function trainerEnv(trainerDir: string, base: NodeJS.ProcessEnv = process.env, workspace?: string): NodeJS.ProcessEnv {
  const prev = base.PYTHONPATH;
  const env: NodeJS.ProcessEnv = { ...base, PYTHONPATH: prev ? `${trainerDir}${path.delimiter}${prev}` : trainerDir, PYTHONUNBUFFERED: '1', PYTHONSAFEPATH: '1' };
  if (workspace) env.GRPO_WORKSPACE = workspace;
  else delete env.GRPO_WORKSPACE;
  return env;
}

/** The working directory of every Python process: the extension's trainer folder, which the opened
 * workspace cannot put files in (libraries that look in the working directory, e.g. for a model id, see
 * only the trainer). Paths from the workspace are passed absolute (workspaceArgs). */
export const trainerCwd = (trainerDir: string): string => trainerDir;

/** Settings whose value may be a path relative to the workspace. */
const PATH_SETTINGS = ['task', 'model'];

/**
 * Trainer arguments with relative paths made absolute against the workspace, since the trainer no longer
 * runs there: `--config FILE`, `--run-dir DIR`, and `--set task=…` / `--set model=…` when the workspace
 * holds that path (a bare name such as `arith` or `builtin:tiny` stays as it is).
 */
export function workspaceArgs(args: readonly string[], workspace: string | undefined): string[] {
  if (!workspace) return [...args];
  const abs = (v: string) => (path.isAbsolute(v) ? v : path.join(workspace, v));
  return args.map((a, i) => {
    const prev = args[i - 1];
    if (prev === '--config' || prev === '--run-dir') return abs(a);
    if (prev === '--set') {
      const eq = a.indexOf('=');
      const key = a.slice(0, eq);
      const value = a.slice(eq + 1);
      if (eq > 0 && PATH_SETTINGS.includes(key) && value && !path.isAbsolute(value) && fs.existsSync(path.join(workspace, value))) return `${key}=${abs(value)}`;
    }
    return a;
  });
}

const CHECK_CODE = 'import sys, torch, transformers, grpo; print(sys.version.split()[0], torch.__version__, transformers.__version__)';

/**
 * Runs `<python> -c "import torch, transformers, grpo"` (argument array, no shell). An environment whose
 * set-up did not finish (its marker says so) is refused without running it, unless `ignoreMarker`.
 */
export function checkInterpreter(python: string, trainerDir: string, o: { timeoutMs?: number; ignoreMarker?: boolean } = {}): Promise<CheckResult> {
  const timeoutMs = o.timeoutMs ?? 180_000;
  if (!o.ignoreMarker && readSetupMarker(python)?.complete === false) {
    return Promise.resolve({ ok: false, reason: 'its set-up did not finish (run "GRPO: Set Up Python Environment" again)' });
  }
  return runPython(python, ['-c', CHECK_CODE], { trainerDir, timeoutMs }).then((r): CheckResult => {
    if (!r.ran) {
      if (r.timedOut) return { ok: false, reason: `the import check took longer than ${Math.round(timeoutMs / 1000)} s` };
      if (r.threw) return { ok: false, reason: `cannot run it (${r.message})` };
      return { ok: false, reason: r.errno === 'ENOENT' ? 'not found' : r.errno === 'EACCES' ? 'not executable' : r.message };
    }
    if (r.code === 0) return { ok: true, versions: r.stdout.trim() };
    const missing = /No module named '([^']+)'/.exec(r.stderr);
    return { ok: false, reason: missing ? `cannot import ${missing[1]}` : r.signal ? `killed (${r.signal})` : lastLine(r.stderr) || `exited with code ${r.code}` };
  });
}

/** What a Python child did: its exit and output, or why it never ran to an exit (could not start, timed out). */
export type PythonRun =
  | { ran: true; code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }
  | { ran: false; timedOut: boolean; threw: boolean; errno?: string; message: string };

/**
 * Runs `<python> ...args` the way every trainer process runs (an argument array, never a shell; the
 * trainer's environment and working directory), killed after `timeoutMs`. stdout is kept up to `maxStdout`
 * characters, stderr's last 64 KB.
 */
export function runPython(python: string, args: string[], o: { trainerDir: string; timeoutMs: number; workspace?: string; env?: NodeJS.ProcessEnv; maxStdout?: number }): Promise<PythonRun> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const done = (r: PythonRun) => {
      clearTimeout(timer);
      if (!settled) {
        settled = true;
        resolve(r);
      }
    };
    let child;
    try {
      // (Not spawn's own `timeout`: its timer outlives a child that failed to start.)
      child = spawn(python, args, { cwd: trainerCwd(o.trainerDir), env: trainerEnv(o.trainerDir, o.env ?? process.env, o.workspace), shell: false, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      return done({ ran: false, timedOut: false, threw: true, message: (e as Error).message });
    }
    timer = setTimeout(() => {
      child.kill('SIGKILL');
      done({ ran: false, timedOut: true, threw: false, message: `no answer within ${Math.round(o.timeoutMs / 1000)} s` });
    }, o.timeoutMs);
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      if (o.maxStdout === undefined || stdout.length < o.maxStdout) stdout += d;
    });
    child.stderr.on('data', (d: string) => {
      stderr = (stderr + d).slice(-65536);
    });
    child.on('error', (e: NodeJS.ErrnoException) => done({ ran: false, timedOut: false, threw: false, errno: e.code, message: e.message }));
    child.on('close', (code, signal) => done({ ran: true, code, signal, stdout, stderr }));
  });
}

/** The last non-empty line of a process's stderr ('' when there is none). */
export function lastLine(text: string): string {
  return text.trim().split('\n').filter(Boolean).pop() ?? '';
}

export function setupCommand(trainerDir: string): string {
  const req = path.join(trainerDir, 'requirements.txt');
  const quoted = /^[\w@%+=:,./-]+$/.test(req) ? req : `'${req.replace(/'/g, `'\\''`)}'`;
  return IS_WIN ? `python -m venv .venv && .venv\\Scripts\\pip install -r ${quoted}` : `python3 -m venv .venv && .venv/bin/pip install -r ${quoted}`;
}

export type Discovery =
  | { ok: true; python: string; source: CandidateSource; versions: string }
  | { ok: false; tried: { candidate: Candidate; reason: string }[]; message: string };

/** Walks the candidates in order; the first that can import the trainer's requirements wins. */
export async function findInterpreter(
  inputs: DiscoveryInputs,
  trainerDir: string,
  check: (python: string, trainerDir: string) => Promise<CheckResult> = checkInterpreter,
): Promise<Discovery> {
  const tried: { candidate: Candidate; reason: string }[] = [];
  for (const candidate of await listCandidates(inputs)) {
    const r = await check(candidate.python, trainerDir);
    if (r.ok) return { ok: true, python: candidate.python, source: candidate.source, versions: r.versions };
    tried.push({ candidate, reason: r.reason });
  }
  const list = tried.map((t) => `${t.candidate.python} (${SOURCE_LABEL[t.candidate.source]}): ${t.reason}`).join('; ');
  // In a remote window VS Code ignores machine-overridable settings from the local user settings, silently.
  const remote = inputs.remoteName && !inputs.setting?.trim()
    ? ` This is a remote window (${inputs.remoteName}): a grpo.pythonPath in your local User settings is ignored here; set it in the Remote or Workspace settings.`
    : '';
  return {
    ok: false,
    tried,
    message: `No Python that can run the trainer (it needs torch and transformers). Tried ${list}.${remote} ` +
      `Make one with "GRPO: Set Up Python Environment", choose one with "GRPO: Select Python Interpreter", or set one up yourself: ${setupCommand(trainerDir)}`,
  };
}
