/**
 * The user code a run names (its config.json's `task` when it is `module:object`, and `reward_function`),
 * asked of the trainer before any process opens the run: `python -m grpo user-code RUN_OR_CHECKPOINT`
 * imports nothing and prints one JSON line, `{"run_dir": …, "modules": [{setting, spec, module, attr,
 * origin, refused}]}` (trainer/grpo/plugins.py). This module runs that command, validates its answer, builds
 * the text of the question the window asks ("Run 'x' names user code"), and remembers the answers for the
 * window's session. No `vscode` import: unit-tested directly (test/unit/userCode.test.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { lastLine, runPython } from '../environment/python';
import { isObject, type Checked } from '../shared/guards';
import { CONFIG_FILE } from './runDir';

export interface UserCodeModule {
  /** the setting that names it: `task` or `reward_function` */
  setting: string;
  /** the setting's value, `module:object` */
  spec: string;
  module: string;
  attr: string;
  /** the file the module would be imported from, found without importing it; null: not found */
  origin: string | null;
  /** why the trainer refuses to import it (standard library, a file in or beside a run directory, …); null: it would import it */
  refused: string | null;
}

export interface UserCodeReport {
  /** the run directory, absolute; null for a checkpoint outside any run */
  run_dir: string | null;
  modules: UserCodeModule[];
}

/** More than this many modules, or a string longer than this, is not an answer the trainer gives. */
const MAX_MODULES = 32;
const MAX_TEXT = 64 * 1024;

const isText = (v: unknown): v is string => typeof v === 'string' && v.length <= MAX_TEXT;
const isTextOrNull = (v: unknown): v is string | null => v === null || isText(v);

/** The guard of `user-code`'s answer. Unknown fields are dropped; every listed one is required. */
export function checkUserCodeReport(v: unknown): Checked<UserCodeReport> {
  if (!isObject(v)) return { ok: false, error: 'not an object' };
  if (!isTextOrNull(v.run_dir)) return { ok: false, error: "'run_dir' must be a path or null" };
  if (!Array.isArray(v.modules)) return { ok: false, error: "'modules' must be a list" };
  if (v.modules.length > MAX_MODULES) return { ok: false, error: `'modules' lists ${v.modules.length} modules (at most ${MAX_MODULES})` };
  const modules: UserCodeModule[] = [];
  for (const [i, m] of v.modules.entries()) {
    if (!isObject(m)) return { ok: false, error: `modules[${i}] is not an object` };
    for (const k of ['setting', 'spec', 'module', 'attr'] as const) if (!isText(m[k]) || !m[k]) return { ok: false, error: `modules[${i}].${k} must be a non-empty string` };
    for (const k of ['origin', 'refused'] as const) if (!isTextOrNull(m[k])) return { ok: false, error: `modules[${i}].${k} must be a string or null` };
    modules.push({ setting: m.setting as string, spec: m.spec as string, module: m.module as string, attr: m.attr as string, origin: m.origin as string | null, refused: m.refused as string | null });
  }
  return { ok: true, value: { run_dir: v.run_dir, modules } };
}

/** `user-code`'s stdout: its one JSON line (the last line that opens an object; anything else is ignored). */
export function parseUserCodeOutput(stdout: string): Checked<UserCodeReport> {
  const line = stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('{')).pop();
  if (line === undefined) return { ok: false, error: 'it printed no JSON line' };
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (e) {
    return { ok: false, error: `its answer is not JSON (${(e as Error).message})` };
  }
  return checkUserCodeReport(value);
}

export class UserCodeQueryError extends Error {}

export interface QueryOptions {
  trainerDir: string;
  /** the opened folder (GRPO_WORKSPACE): where the trainer looks for user modules, so `origin` is where serve/train would import from */
  workspace?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/**
 * Runs `<python> -m grpo user-code <target>` (an argument array, never a shell; the environment and working
 * directory of every trainer process) and returns its validated answer; UserCodeQueryError says why not.
 */
export async function queryUserCode(python: string, target: string, o: QueryOptions): Promise<UserCodeReport> {
  const timeoutMs = o.timeoutMs ?? 120_000;
  const r = await runPython(python, ['-m', 'grpo', 'user-code', target], { trainerDir: o.trainerDir, workspace: o.workspace, env: o.env, timeoutMs, maxStdout: 4 * MAX_TEXT * MAX_MODULES });
  const fail = (why: string) => new UserCodeQueryError(`could not list the user code ${path.basename(target)} names (python -m grpo user-code): ${why}`);
  if (!r.ran) throw fail(r.errno === 'ENOENT' ? `${python} was not found` : r.message);
  if (r.code !== 0) throw fail(lastLine(r.stderr) || (r.signal ? `killed (${r.signal})` : `exited with code ${r.code}`));
  const parsed = parseUserCodeOutput(r.stdout);
  if (!parsed.ok) throw fail(parsed.error);
  return parsed.value;
}

// --- What the window asks ---------------------------------------------------------------------------

export const IMPORT_AND_OPEN = 'Import and Open';
export const OPEN_WITHOUT = 'Open Without It';
export const IMPORT_AND_RESUME = 'Import and Resume';

const clip = (s: string, n = 300) => (s.length > n ? `${s.slice(0, n)}…` : s);

/** One line per module: `reward_function = my_rewards:score → imports my_rewards from /ws/my_rewards.py`. */
export function describeModule(m: UserCodeModule): string {
  const head = `${clip(m.setting, 40)} = ${clip(m.spec, 200)}`;
  if (m.refused !== null) return `${head} → refused: ${clip(m.refused, 600)}`;
  if (m.origin === null) return `${head} → imports ${clip(m.module, 200)}, which is not found (the trainer will fail to import it)`;
  return `${head} → imports ${clip(m.module, 200)} from ${clip(m.origin, 400)}`;
}

/** A modal question: VS Code's `showWarningMessage(message, {modal: true, detail}, ...actions)`. */
export interface UserCodeQuestion { message: string; detail: string; actions: string[] }

/**
 * The question before a `serve` process opens run `runName` (null when the run names no user code): the
 * modules, where each would come from, and "Import and Open" / "Open Without It"; a refused module leaves
 * only "Open Without It" (the trainer would refuse to start with it).
 */
export function openQuestion(runName: string, report: UserCodeReport): UserCodeQuestion | null {
  if (!report.modules.length) return null;
  const refused = report.modules.some((m) => m.refused !== null);
  const lines = report.modules.map(describeModule);
  const tail = refused
    ? 'The trainer refuses to import this code. Open Without It: the run opens with none of its user code (the task knows no reference answers; rewards come from the verifier).'
    : 'Import and Open runs this code in the trainer. Open Without It: none of it is imported (the task knows no reference answers; rewards come from the verifier).';
  return { message: `Run '${clip(runName, 120)}' names user code`, detail: `${lines.join('\n')}\n\n${tail}`, actions: refused ? [OPEN_WITHOUT] : [IMPORT_AND_OPEN, OPEN_WITHOUT] };
}

/**
 * Before `train --resume` of run `runName`: null when it names no user code; otherwise the modal question
 * ("Import and Resume" only: training cannot run without its reward and task code), or, when the trainer
 * refuses a module, the error to show instead (nothing is resumed).
 */
export function resumeQuestion(runName: string, report: UserCodeReport): { kind: 'ask'; question: UserCodeQuestion } | { kind: 'refused'; error: string } | null {
  if (!report.modules.length) return null;
  const refused = report.modules.filter((m) => m.refused !== null);
  if (refused.length) {
    return { kind: 'refused', error: `GRPO: run ${clip(runName, 120)} names user code the trainer refuses to import (${refused.map(describeModule).join('; ')}); it was not resumed.` };
  }
  return {
    kind: 'ask',
    question: {
      message: `Run '${clip(runName, 120)}' names user code`,
      detail: `${report.modules.map(describeModule).join('\n')}\n\nResuming imports and runs this code in the trainer (training needs it).`,
      actions: [IMPORT_AND_RESUME],
    },
  };
}

// --- The window's answers ---------------------------------------------------------------------------

export type UserCodeChoice = 'import' | 'without';

/** What an answer was given to: the modules, their files and refusals (a changed config.json or a moved
 * module asks again). */
export const reportSignature = (r: UserCodeReport): string => JSON.stringify(r.modules.map((m) => [m.setting, m.spec, m.origin, m.refused]));

/**
 * The answers of this window's session, per run directory, and the last `user-code` answer per run
 * directory while its config.json is unchanged (so a second checkpoint of the same run is opened without
 * running the query again).
 */
export class UserCodeAnswers {
  private readonly choices = new Map<string, { signature: string; choice: UserCodeChoice }>();
  private readonly reports = new Map<string, { key: string; report: UserCodeReport }>();

  choice(runDir: string, report: UserCodeReport): UserCodeChoice | undefined {
    const c = this.choices.get(path.resolve(runDir));
    return c && c.signature === reportSignature(report) ? c.choice : undefined;
  }

  remember(runDir: string, report: UserCodeReport, choice: UserCodeChoice): void {
    this.choices.set(path.resolve(runDir), { signature: reportSignature(report), choice });
  }

  /** The report last read for `runDir`, if its config.json has not changed since (size, time, inode). */
  cachedReport(runDir: string): UserCodeReport | undefined {
    const hit = this.reports.get(path.resolve(runDir));
    return hit && hit.key === configKey(runDir) ? hit.report : undefined;
  }

  cacheReport(runDir: string, report: UserCodeReport, key = configKey(runDir)): void {
    if (key) this.reports.set(path.resolve(runDir), { key, report });
  }
}

/** config.json's identity (size, modification time, inode), '' when absent: a cached report is stale once it changes. */
export function configKey(runDir: string): string {
  const st = fs.lstatSync(path.join(runDir, CONFIG_FILE), { throwIfNoEntry: false });
  return st ? `${st.size}:${st.mtimeMs}:${st.ino}` : '';
}
