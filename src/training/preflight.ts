/**
 * Preflight (`python -m grpo preflight --json`, run-directory.md): its arguments, reading its answer, which
 * settings a verdict belongs to, and the warning Start gives on a predicted dead or wasteful run. Pure: no
 * `vscode`, no Node modules (the training view's page uses settingsKey and the state's shape through
 * panelProtocol.ts).
 */
import { formatDuration } from '../shared/format';
import { checkPreflightReport, type PreflightReport, type Verdict } from '../shared/records';
import { diffFromDefaults, settingsToSetArgs, type CheckedValues, type SettingSpec, type SettingValues } from '../shared/settings';
import type { Checked } from '../shared/guards';

/** The interpreter's arguments: train's settings arguments (`--set key=value` for what differs from the
 * defaults), then `--json`. An argument array, never a shell string. */
export function preflightArgs(values: CheckedValues, schema?: readonly SettingSpec[]): string[] {
  return ['-m', 'grpo', 'preflight', ...settingsToSetArgs(values, schema), '--json'];
}

/** Which settings a verdict is for: the values that differ from the defaults, keys sorted. Equal settings
 * give equal keys; any change to a setting gives another. */
export function settingsKey(values: SettingValues, schema?: readonly SettingSpec[]): string {
  const d = diffFromDefaults(values, schema);
  return JSON.stringify(Object.keys(d).sort().map((k) => [k, d[k]]));
}

/** What the exit status says (0 healthy, 1 predicted dead or wasteful, 2 bad settings). */
const EXIT_MEANS: Record<number, readonly Verdict[]> = { 0: ['healthy'], 1: ['dead', 'wasteful'], 2: ['bad_settings'] };

/**
 * Preflight's answer: its last non-empty stdout line, one PreflightReport, checked with the generated guard.
 * A missing or unreadable report is an error that says what came instead; so is a report whose verdict the
 * exit status contradicts. Exit status 2 without a report (the argument parser refused an argument) is
 * a bad-settings report carrying the last stderr line.
 */
export function readPreflightAnswer(stdout: string, exitCode: number | null, stderrTail: readonly string[] = []): Checked<PreflightReport> {
  const last = stdout.split('\n').map((l) => l.trim()).filter(Boolean).pop();
  const why = stderrTail.length ? `: ${stderrTail[stderrTail.length - 1]}` : '';
  if (last === undefined) {
    if (exitCode === 2 && stderrTail.length) {
      return { ok: true, value: { verdict: 'bad_settings', exit_code: 2, problems: [], error: stderrTail[stderrTail.length - 1] } };
    }
    return { ok: false, error: `preflight printed no report (exit status ${exitCode ?? 'none: killed'})${why}` };
  }
  let v: unknown;
  try {
    v = JSON.parse(last);
  } catch {
    return { ok: false, error: `preflight's last line is not JSON (exit status ${exitCode ?? 'none'}): ${last.slice(0, 200)}` };
  }
  const r = checkPreflightReport(v);
  if (!r.ok) return { ok: false, error: `preflight's report is unreadable: ${r.error}` };
  if (exitCode !== null && EXIT_MEANS[exitCode] && !EXIT_MEANS[exitCode].includes(r.value.verdict)) {
    return { ok: false, error: `preflight's report says ${r.value.verdict} but it exited with status ${exitCode}` };
  }
  if (exitCode !== null && !EXIT_MEANS[exitCode]) return { ok: false, error: `preflight failed (exit status ${exitCode})${why}` };
  return r;
}

/** The Training view's preflight, as the host tells the page. `key`: settingsKey of the values it ran with. */
export interface PreflightState {
  status: 'idle' | 'running' | 'done' | 'failed' | 'cancelled';
  key: string | null;
  /** the last progress line (stderr) while running */
  progress: string | null;
  report: PreflightReport | null;
  error: string | null;
  /** when it started (ms since the epoch) */
  startedAt: number | null;
}
export const IDLE_PREFLIGHT: PreflightState = { status: 'idle', key: null, progress: null, report: null, error: null, startedAt: null };

/** Whether a finished verdict was for other settings than `key` (the form changed since). */
export const isStale = (s: PreflightState, key: string): boolean => s.status === 'done' && s.key !== key;

/** The modal warning Start gives: only when the last preflight for exactly these settings (`key`) predicted
 * a dead or wasteful run. Its title names the verdict and the first problem; the detail lists them with
 * their changes. */
export function startWarning(s: PreflightState, key: string): { title: string; detail: string } | null {
  const r = s.report;
  if (s.status !== 'done' || s.key !== key || !r || (r.verdict !== 'dead' && r.verdict !== 'wasteful')) return null;
  const worst = r.problems.find((p) => p.severity === r.verdict) ?? r.problems.find((p) => p.severity !== 'note') ?? r.problems[0];
  const title = `Preflight predicts a ${r.verdict} run with these settings${worst ? `: ${worst.message}` : ''}. Start anyway?`;
  const detail = r.problems.filter((p) => p.severity !== 'note').map((p) => `• ${p.message}\n  → ${p.change}`).join('\n');
  return { title, detail };
}

export const VERDICT_LABEL: Record<Verdict, string> = { healthy: 'Healthy', wasteful: 'Wasteful', dead: 'Dead', bad_settings: 'Bad settings' };

/** The report's numbers as label/value pairs for display (only those present). */
export function reportNumbers(r: PreflightReport): [string, string][] {
  const pct = (x: number) => `${(x * 100).toFixed(x < 0.1 ? 1 : 0)}%`;
  const num = (x: number, d = 2) => (Math.abs(x) >= 100 ? Math.round(x).toString() : Number(x.toFixed(d)).toString());
  const out: [string, string][] = [];
  if (r.signal_share !== undefined) out.push(['signal share', `${pct(r.signal_share)} of groups${r.groups ? ` (${Object.entries(r.groups).map(([k, n]) => `${k.replace(/_/g, ' ')} ${n}`).join(', ')})` : ''}`]);
  if (r.truncated_ratio !== undefined) out.push(['truncation', `${pct(r.truncated_ratio)}${r.truncated_without_answer !== undefined ? ` (${pct(r.truncated_without_answer)} before any answer)` : ''}`]);
  if (r.reward) {
    const w = r.reward;
    out.push(['reward', `mean ${num(w.mean ?? NaN)} ± ${num(w.std ?? NaN)}${w.min !== undefined && w.max !== undefined ? `, ${num(w.min)} to ${num(w.max)}` : ''}`]);
  }
  if (r.accuracy !== undefined) out.push(['accuracy', pct(r.accuracy)]);
  if (r.completion_length) {
    const c = r.completion_length;
    out.push(['completion length', ['mean', 'p10', 'p50', 'p90', 'max'].filter((k) => c[k] !== undefined).map((k) => `${k} ${num(c[k], 1)}`).join(', ') + ' tokens']);
  }
  if (r.prompts_over_limit !== undefined) out.push(['long prompts', `${r.prompts_over_limit} of ${r.prompts_checked ?? '?'} over max_prompt_length`]);
  if (r.reward_errors) out.push(['reward errors', String(r.reward_errors)]);
  if (r.seconds_per_step !== undefined) out.push(['seconds per step', `${num(r.seconds_per_step)} s${r.estimated_total_seconds !== undefined ? ` (whole run ≈ ${formatDuration(r.estimated_total_seconds)})` : ''}`]);
  if (r.peak_memory_mb !== undefined) out.push(['peak memory', r.peak_memory_mb === null ? 'unknown' : `${Math.round(r.peak_memory_mb)} MB`]);
  if (r.questions !== undefined) out.push(['sampled', `${r.questions} questions × G ${r.num_generations ?? '?'}`]);
  if (r.start) out.push(['start policy', r.start]);
  if (r.seconds !== undefined) out.push(['preflight took', `${num(r.seconds, 1)} s`]);
  return out;
}
