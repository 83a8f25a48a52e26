/**
 * Reward tests, the parts without `vscode` (unit-tested): a completion of a group as a `check-rewards` case
 * (docs/trainer.md, "Reward tests"), the reward the user types, appending a case to the workspace's JSONL
 * file without following a symlink out of the workspace, and reading `check-rewards --json`'s report.
 * The commands around them are ./rewardTests.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isObject } from '../shared/guards';
import type { GroupRecord } from '../shared/records';

/** One case of the file, as `python -m grpo check-rewards` reads it. */
export interface RewardTestCase {
  question: string;
  answer: string | null;
  completion: string;
  expected: number;
  /** what each reward function gave when the case was saved (null: it did not apply) */
  rewards: Record<string, number | null>;
  /** trainer_state.global_step the functions saw: the steps done before the logged step */
  step?: number;
  /** cut off at max_completion_length: check-rewards then passes its token ids without EOS, as training did */
  truncated?: boolean;
  /** the completion's token strings as logged: check-rewards rebuilds its exact ids from them */
  completion_tokens?: string[];
  note?: string;
}

/** Completion `index` of `g` as a case that should get `expected`; `source` names where it came from. */
export function rewardTestCase(g: GroupRecord, index: number, expected: number, source: string): RewardTestCase {
  if (!Number.isInteger(index) || index < 0 || index >= g.completions.length) throw new RangeError(`no completion ${index} in a group of ${g.completions.length}`);
  const rewards: Record<string, number | null> = {};
  for (const [name, values] of Object.entries(g.reward_functions ?? {})) rewards[name] = values[index] ?? null;
  // the run's single reward (no reward_funcs): what it gave, under the name check-rewards reports it with
  if (!Object.keys(rewards).length) rewards.reward = g.rewards[index];
  const c: RewardTestCase = { question: g.question, answer: g.answer, completion: g.completions[index], expected, rewards };
  if (typeof g.step === 'number' && g.step >= 1) c.step = g.step - 1;
  if (g.truncated) c.truncated = g.truncated[index] === true;
  const toks = g.tokens?.[index]?.text;
  if (toks) c.completion_tokens = toks;
  c.note = `${source}, completion ${index}: reward ${g.rewards[index]}`;
  return c;
}

/** The reward the user typed: a finite number, or why not. */
export function parseExpected(text: string): { ok: true; value: number } | { ok: false; error: string } {
  const t = text.trim().replace(/^\u2212/, '-');
  if (!t) return { ok: false, error: 'Type the reward this completion should get, e.g. 0 or 1.' };
  const v = Number(t);
  if (!/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(t) || !Number.isFinite(v)) return { ok: false, error: `'${t.slice(0, 40)}' is not a number: type the reward this completion should get, e.g. 0, 1 or -0.5.` };
  return { ok: true, value: v };
}

const within = (p: string, dir: string): boolean => {
  const r = path.relative(dir, p);
  return r === '' || (!r.startsWith('..') && !path.isAbsolute(r));
};

export class RewardTestFileError extends Error {}

/**
 * Where the reward tests go: `setting` (absolute, or relative to `workspace`) resolved, refused unless it is
 * a file inside the workspace, through no symlink that leads out of it. The folder must exist.
 */
export function resolveTestsFile(workspace: string, setting: string): string {
  const name = setting.trim() || 'reward-tests.jsonl';
  const abs = path.resolve(workspace, name);
  const realWs = fs.realpathSync(workspace);
  if (!within(abs, path.resolve(workspace)) && !within(abs, realWs)) throw new RewardTestFileError(`grpo.rewardTestsFile '${name}' is outside the workspace folder ${workspace}: reward tests are kept in the workspace.`);
  const dir = path.dirname(abs);
  let realDir: string;
  try {
    realDir = fs.realpathSync(dir);
  } catch {
    throw new RewardTestFileError(`grpo.rewardTestsFile '${name}': the folder ${path.relative(workspace, dir) || '.'} does not exist in the workspace.`);
  }
  if (!within(realDir, realWs)) throw new RewardTestFileError(`grpo.rewardTestsFile '${name}': its folder leads out of the workspace through a symlink (to ${realDir}); not written.`);
  const file = path.join(realDir, path.basename(abs));
  let st: fs.Stats | null = null;
  try {
    st = fs.lstatSync(file);
  } catch {
    return file; // absent: created in the real folder
  }
  if (st.isSymbolicLink()) {
    let target: string;
    try {
      target = fs.realpathSync(file);
    } catch {
      throw new RewardTestFileError(`grpo.rewardTestsFile '${name}' is a symlink to nothing; not written.`);
    }
    if (!within(target, realWs)) throw new RewardTestFileError(`grpo.rewardTestsFile '${name}' is a symlink out of the workspace (to ${target}); not written.`);
    return resolveTestsFile(realWs, path.relative(realWs, target));
  }
  if (!st.isFile()) throw new RewardTestFileError(`grpo.rewardTestsFile '${name}' is not a file.`);
  return file;
}

/**
 * Appends `c` as one JSON line to the tests file (created if absent; a last line without its newline gets
 * one first). Returns the file and the case's line number. Opened with O_NOFOLLOW: a symlink put in its
 * place after the check is not followed.
 */
export function appendCase(workspace: string, setting: string, c: RewardTestCase): { file: string; line: number } {
  const file = resolveTestsFile(workspace, setting);
  const { O_APPEND, O_CREAT, O_RDWR } = fs.constants;
  const nofollow = (fs.constants as Record<string, number>).O_NOFOLLOW ?? 0;
  let fd: number;
  try {
    fd = fs.openSync(file, O_RDWR | O_APPEND | O_CREAT | nofollow, 0o644);
  } catch (e) {
    throw new RewardTestFileError(`cannot write the reward tests file ${file}: ${(e as Error).message}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new RewardTestFileError(`${file} is not a file.`);
    let text = '';
    if (st.size > 0) text = fs.readFileSync(fd, 'utf8');
    const prefix = text && !text.endsWith('\n') ? '\n' : '';
    const lines = text ? text.split('\n').length - (text.endsWith('\n') ? 1 : 0) : 0;
    fs.writeSync(fd, `${prefix}${JSON.stringify(c)}\n`);
    return { file, line: lines + 1 };
  } finally {
    fs.closeSync(fd);
  }
}

/** One case's outcome in `check-rewards --json`. */
export interface CheckOutcome { line: number; ok: boolean; expected: number; reward: number; components: Record<string, number | null>; saved: Record<string, unknown>; errors: string[]; note?: string }
export interface CheckReport { file: string; reward_funcs: string[]; cases: number; agree: number; disagree: number; skipped: number; bad: Record<string, number>; results: CheckOutcome[] }

const isOutcome = (v: unknown): v is CheckOutcome => isObject(v) && typeof v.line === 'number' && typeof v.ok === 'boolean' && typeof v.expected === 'number' &&
  (typeof v.reward === 'number' || v.reward === null) && isObject(v.components) && isObject(v.saved) && Array.isArray(v.errors);

/** The report on stdout's last line (exit 0 or 1), or why it cannot be read. */
export function readCheckReport(stdout: string): { ok: true; value: CheckReport } | { ok: false; error: string } {
  const last = stdout.trim().split('\n').pop() ?? '';
  let v: unknown;
  try {
    v = JSON.parse(last);
  } catch {
    return { ok: false, error: 'check-rewards printed no JSON report' };
  }
  if (!isObject(v) || !Array.isArray(v.results) || !v.results.every(isOutcome) || typeof v.cases !== 'number' || typeof v.disagree !== 'number') return { ok: false, error: 'check-rewards printed a report of an unexpected shape' };
  return { ok: true, value: v as unknown as CheckReport };
}

const num = (v: unknown): string => (typeof v === 'number' ? String(Math.round(v * 1e4) / 1e4) : v === null ? 'none' : String(v));

/** A disagreeing case in words: the label (expected vs got) and the detail (each function, then and now). */
export function describeOutcome(r: CheckOutcome): { label: string; detail: string } {
  const now = Object.entries(r.components).map(([k, v]) => `${k} ${num(v)}${k in r.saved ? ` (saved ${num(r.saved[k])})` : ''}`);
  const errors = r.errors.length ? ` · errors: ${r.errors.join('; ')}` : '';
  return { label: `line ${r.line}: expected ${num(r.expected)}, got ${num(r.reward)}`, detail: `${now.join(', ')}${errors}${r.note ? ` · ${r.note}` : ''}` };
}
