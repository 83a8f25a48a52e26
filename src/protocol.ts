/**
 * The one protocol module: every message that crosses a process or sandbox boundary.
 *
 *  - trainer → host: JSON lines on the trainer's stdout (docs/run-directory.md, "The live stream")
 *  - host → trainer: control requests, JSON lines on the trainer's stdin
 *  - run-directory records: status.json, metrics.jsonl rows, events.jsonl rows
 *  - host ↔ webview: the dashboard's and the training panel's messages
 *
 * Each message is a TypeScript type plus a hand-written runtime guard; every boundary validates what it
 * receives with these guards. This module is imported by the extension host and by both webview bundles,
 * so it must not import `vscode` or any Node module.
 */

export const PROTOCOL_VERSION = 1;

// ---------------------------------------------------------------------------------------------------
// Small guard helpers

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = Record<string, unknown>;

export function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isStr = (v: unknown): v is string => typeof v === 'string';
const isNumOrNull = (v: unknown): v is number | null => v === null || isNum(v);
const isStrOrNull = (v: unknown): v is string | null => v === null || isStr(v);
const optional = <T>(g: (v: unknown) => v is T) => (v: unknown): v is T | undefined => v === undefined || g(v);
const oneOf = <T extends string>(...xs: readonly T[]) => (v: unknown): v is T => isStr(v) && (xs as readonly string[]).includes(v);
const arrayOf = <T>(g: (v: unknown) => v is T) => (v: unknown): v is T[] => Array.isArray(v) && v.every(g);

/** Checks fields of an object against guards; returns the name of the first bad field, or null. */
function badField(o: Obj, spec: Record<string, (v: unknown) => boolean>): string | null {
  for (const [key, guard] of Object.entries(spec)) {
    if (!guard(o[key])) return key;
  }
  return null;
}

/** A validation result that says what was wrong, for logs and error messages. */
export type Checked<T> = { ok: true; value: T } | { ok: false; error: string };

// ---------------------------------------------------------------------------------------------------
// Run-directory records

export const RUN_STATES = ['running', 'paused', 'stopped', 'finished', 'failed'] as const;
export type RunState = (typeof RUN_STATES)[number];
export const PHASES = ['setup', 'sft', 'grpo', 'done'] as const;
export type Phase = (typeof PHASES)[number];

export interface RunStatus {
  protocol: number;
  state: RunState;
  phase: Phase;
  pid: number | null;
  step: number;
  max_steps: number;
  sft_step?: number;
  sft_steps?: number;
  started_at: number | null;
  updated_at: number | null;
  ended_at: number | null;
  last_checkpoint: string | null;
  error: string | null;
}

const statusSpec = {
  protocol: isNum,
  state: oneOf(...RUN_STATES),
  phase: oneOf(...PHASES),
  pid: isNumOrNull,
  step: isNum,
  max_steps: isNum,
  sft_step: optional(isNum),
  sft_steps: optional(isNum),
  started_at: optional(isNumOrNull),
  updated_at: optional(isNumOrNull),
  ended_at: optional(isNumOrNull),
  last_checkpoint: optional(isStrOrNull),
  error: optional(isStrOrNull),
};

export function checkStatus(v: unknown): Checked<RunStatus> {
  if (!isObject(v)) return { ok: false, error: 'status is not an object' };
  const bad = badField(v, statusSpec);
  if (bad) return { ok: false, error: `status field '${bad}' is missing or invalid` };
  return {
    ok: true,
    value: {
      ...(v as unknown as RunStatus),
      started_at: (v.started_at as number | null | undefined) ?? null,
      updated_at: (v.updated_at as number | null | undefined) ?? null,
      ended_at: (v.ended_at as number | null | undefined) ?? null,
      last_checkpoint: (v.last_checkpoint as string | null | undefined) ?? null,
      error: (v.error as string | null | undefined) ?? null,
    },
  };
}

/** The metric keys the dashboard knows how to chart (metrics.jsonl; others are kept but not charted). */
export const METRIC_KEYS = [
  'elapsed', 'reward/mean', 'reward/std', 'accuracy', 'frac_reward_zero_std', 'kl', 'clip_ratio/low',
  'clip_ratio/high', 'entropy', 'loss', 'grad_norm', 'learning_rate', 'completion_length/mean',
  'completion_length/max', 'truncated_ratio', 'advantage/mean', 'advantage/std', 'advantage/min',
  'advantage/max', 'time/generate', 'time/train', 'tokens_per_second', 'eval/accuracy',
] as const;
export type MetricKey = (typeof METRIC_KEYS)[number];

/** One metrics.jsonl row: `step` plus numbers (NaN/inf arrive as null after JSON round trips). */
export interface MetricsRow {
  step: number;
  time?: number;
  [key: string]: number | null | undefined;
}

export function checkMetricsRow(v: unknown): Checked<MetricsRow> {
  if (!isObject(v)) return { ok: false, error: 'metrics row is not an object' };
  if (!isNum(v.step)) return { ok: false, error: "metrics row has no numeric 'step'" };
  for (const [k, x] of Object.entries(v)) {
    if (x !== null && typeof x !== 'number') return { ok: false, error: `metrics field '${k}' is not a number` };
  }
  return { ok: true, value: v as MetricsRow };
}

export const EVENT_KINDS = ['phase', 'eval', 'checkpoint', 'ref_reset', 'warning', 'error', 'control'] as const;
export interface RunEvent {
  kind: string; // one of EVENT_KINDS; unknown kinds are kept (forward compatible) but not interpreted
  time: number;
  step: number;
  [key: string]: Json | undefined;
}

export function checkEvent(v: unknown): Checked<RunEvent> {
  if (!isObject(v)) return { ok: false, error: 'event is not an object' };
  const bad = badField(v, { kind: isStr, time: isNum, step: isNum });
  if (bad) return { ok: false, error: `event field '${bad}' is missing or invalid` };
  return { ok: true, value: v as RunEvent };
}

// ---------------------------------------------------------------------------------------------------
// Trainer → host: the live stream (stdout)

export type TrainerMessage =
  | { v: 1; type: 'started'; run_dir: string; pid: number; config: Record<string, Json>; resumed_from: number | null }
  | { v: 1; type: 'status'; status: RunStatus }
  | { v: 1; type: 'progress'; phase: string; step: number; total: number; [k: string]: Json | undefined }
  | { v: 1; type: 'metrics'; row: MetricsRow }
  | { v: 1; type: 'samples'; row: Record<string, Json> & { step: number } }
  | { v: 1; type: 'event'; row: RunEvent }
  | { v: 1; type: 'response'; id: string | number | null; ok: boolean; result?: Json; error?: string };

export function checkTrainerMessage(v: unknown): Checked<TrainerMessage> {
  if (!isObject(v)) return { ok: false, error: 'line is not a JSON object' };
  if (v.v !== PROTOCOL_VERSION) return { ok: false, error: `unsupported protocol version ${JSON.stringify(v.v)}` };
  const fail = (what: string): Checked<TrainerMessage> => ({ ok: false, error: `'${String(v.type)}' message: ${what}` });
  switch (v.type) {
    case 'started': {
      const bad = badField(v, { run_dir: isStr, pid: isNum, config: isObject, resumed_from: optional(isNumOrNull) });
      return bad ? fail(`field '${bad}' is missing or invalid`) : { ok: true, value: { ...v, resumed_from: (v.resumed_from as number | null | undefined) ?? null } as unknown as TrainerMessage };
    }
    case 'status': {
      const s = checkStatus(v.status);
      return s.ok ? { ok: true, value: { v: 1, type: 'status', status: s.value } } : fail(s.error);
    }
    case 'progress': {
      const bad = badField(v, { phase: isStr, step: isNum, total: isNum });
      return bad ? fail(`field '${bad}' is missing or invalid`) : { ok: true, value: v as never };
    }
    case 'metrics': {
      const r = checkMetricsRow(v.row);
      return r.ok ? { ok: true, value: { v: 1, type: 'metrics', row: r.value } } : fail(r.error);
    }
    case 'samples':
      return isObject(v.row) && isNum(v.row.step) ? { ok: true, value: v as never } : fail("'row' must be an object with a numeric step");
    case 'event': {
      const e = checkEvent(v.row);
      return e.ok ? { ok: true, value: { v: 1, type: 'event', row: e.value } } : fail(e.error);
    }
    case 'response': {
      const bad = badField(v, { ok: (x) => typeof x === 'boolean', error: optional(isStr) });
      return bad ? fail(`field '${bad}' is missing or invalid`) : { ok: true, value: { ...v, id: (v.id as string | number | null | undefined) ?? null } as unknown as TrainerMessage };
    }
    default:
      return { ok: false, error: `unknown message type ${JSON.stringify(v.type)}` };
  }
}

// ---------------------------------------------------------------------------------------------------
// Host → trainer: control requests (stdin)

export const CONTROL_TYPES = ['pause', 'resume', 'stop', 'save_checkpoint'] as const;
export type ControlType = (typeof CONTROL_TYPES)[number];
export interface ControlRequest { v: 1; type: ControlType; id?: string }

export function controlRequest(type: ControlType, id?: string): ControlRequest {
  return id === undefined ? { v: 1, type } : { v: 1, type, id };
}
export function encodeControl(req: ControlRequest): string {
  return JSON.stringify(req) + '\n';
}
export const isControlRequest = (v: unknown): v is ControlRequest =>
  isObject(v) && v.v === PROTOCOL_VERSION && oneOf(...CONTROL_TYPES)(v.type) && optional(isStr)(v.id);

// ---------------------------------------------------------------------------------------------------
// Settings schema (what `python -m grpo config-schema` prints; an embedded copy ships with the extension)

export interface SettingSpec {
  key: string;
  type: 'int' | 'float' | 'str' | 'bool';
  default: Json;
  help: string;
  choices: string[] | null;
  min: number | null;
  max: number | null;
  exclusive_min: boolean;
}

export function isSettingSpec(v: unknown): v is SettingSpec {
  return (
    isObject(v) && isStr(v.key) && oneOf('int', 'float', 'str', 'bool')(v.type) && isStr(v.help) &&
    (v.choices === null || v.choices === undefined || arrayOf(isStr)(v.choices)) &&
    (v.min === null || v.min === undefined || isNum(v.min)) && (v.max === null || v.max === undefined || isNum(v.max))
  );
}
export const isSettingsSchema = arrayOf(isSettingSpec);

/** Setting values as the form holds them (only keys present in the schema). */
export type SettingValues = Record<string, Json>;
const isSettingValues = (v: unknown): v is SettingValues =>
  isObject(v) && Object.values(v).every((x) => x === null || ['string', 'number', 'boolean'].includes(typeof x));

// ---------------------------------------------------------------------------------------------------
// Host ↔ webviews

/** A compact, columnar block of metrics for one run: `step[i]` with `values[key][i]`. */
export interface MetricsColumns {
  step: number[];
  values: Record<string, (number | null)[]>;
}

export function isMetricsColumns(v: unknown): v is MetricsColumns {
  if (!isObject(v) || !Array.isArray(v.step) || !isObject(v.values)) return false;
  const n = v.step.length;
  for (let i = 0; i < n; i++) if (typeof v.step[i] !== 'number') return false;
  for (const col of Object.values(v.values)) {
    if (!Array.isArray(col) || col.length !== n) return false;
    for (let i = 0; i < n; i++) {
      const x = col[i];
      if (x !== null && typeof x !== 'number') return false;
    }
  }
  return true;
}

/** Converts rows (metrics.jsonl) into columns, keeping every numeric key seen. */
export function rowsToColumns(rows: readonly MetricsRow[]): MetricsColumns {
  const keys = new Set<string>();
  for (const r of rows) for (const k of Object.keys(r)) if (k !== 'step') keys.add(k);
  const values: Record<string, (number | null)[]> = {};
  for (const k of keys) values[k] = rows.map((r) => (typeof r[k] === 'number' ? (r[k] as number) : null));
  return { step: rows.map((r) => r.step), values };
}

export interface RunInfo {
  id: string; // the run directory's absolute path
  name: string;
  live: boolean;
  status: RunStatus | null;
}
const isRunInfo = (v: unknown): v is RunInfo =>
  isObject(v) && isStr(v.id) && isStr(v.name) && typeof v.live === 'boolean' && (v.status === null || checkStatus(v.status).ok);

/** Host → dashboard. */
export type HostToDashboard =
  | { type: 'reset'; runs: RunInfo[] }
  | { type: 'runData'; run: RunInfo; columns: MetricsColumns; replace: boolean }
  | { type: 'runStatus'; runId: string; status: RunStatus; live: boolean }
  | { type: 'removeRun'; runId: string };

export function isHostToDashboard(v: unknown): v is HostToDashboard {
  if (!isObject(v)) return false;
  switch (v.type) {
    case 'reset': return arrayOf(isRunInfo)(v.runs);
    case 'runData': return isRunInfo(v.run) && isMetricsColumns(v.columns) && typeof v.replace === 'boolean';
    case 'runStatus': return isStr(v.runId) && checkStatus(v.status).ok && typeof v.live === 'boolean';
    case 'removeRun': return isStr(v.runId);
    default: return false;
  }
}

/** Dashboard → host. `state` is what the webview persisted (restored by the panel serializer). */
export interface DashboardState { runIds: string[]; smoothing: number }
export const isDashboardState = (v: unknown): v is DashboardState =>
  isObject(v) && arrayOf(isStr)(v.runIds) && isNum(v.smoothing);

export type DashboardToHost =
  | { type: 'ready'; state: DashboardState | null }
  | { type: 'removeRun'; runId: string }
  | { type: 'addRun' }
  | { type: 'log'; level: 'info' | 'error'; message: string };

export function isDashboardToHost(v: unknown): v is DashboardToHost {
  if (!isObject(v)) return false;
  switch (v.type) {
    case 'ready': return v.state === null || isDashboardState(v.state);
    case 'removeRun': return isStr(v.runId);
    case 'addRun': return true;
    case 'log': return oneOf('info', 'error')(v.level) && isStr(v.message);
    default: return false;
  }
}

/** The compact live summary shown in the training panel and status bar. */
export interface LiveSummary {
  runName: string;
  state: RunState | 'starting';
  phase: Phase;
  attached: boolean; // re-attached through the run directory (no stdin: pause/resume unavailable)
  step: number;
  maxSteps: number;
  sftStep: number | null;
  sftSteps: number | null;
  reward: number | null;
  accuracy: number | null;
  kl: number | null;
  elapsed: number | null; // seconds
  eta: number | null; // seconds
  error: string | null;
}
const isLiveSummary = (v: unknown): v is LiveSummary =>
  isObject(v) && isStr(v.runName) && isStr(v.state) && isStr(v.phase) && typeof v.attached === 'boolean' && isNum(v.step);

/** Host → training panel. */
export type HostToPanel =
  | { type: 'init'; schema: SettingSpec[]; values: SettingValues; trusted: boolean; summary: LiveSummary | null }
  | { type: 'summary'; summary: LiveSummary | null }
  | { type: 'values'; values: SettingValues };

export function isHostToPanel(v: unknown): v is HostToPanel {
  if (!isObject(v)) return false;
  switch (v.type) {
    case 'init': return isSettingsSchema(v.schema) && isSettingValues(v.values) && typeof v.trusted === 'boolean' && (v.summary === null || isLiveSummary(v.summary));
    case 'summary': return v.summary === null || isLiveSummary(v.summary);
    case 'values': return isSettingValues(v.values);
    default: return false;
  }
}

/** Training panel → host. */
export type PanelToHost =
  | { type: 'ready' }
  | { type: 'valuesChanged'; values: SettingValues }
  | { type: 'start'; values: SettingValues }
  | { type: 'control'; action: 'pause' | 'resume' | 'stop' }
  | { type: 'resetDefaults' }
  | { type: 'openDashboard' };

export function isPanelToHost(v: unknown): v is PanelToHost {
  if (!isObject(v)) return false;
  switch (v.type) {
    case 'ready': case 'resetDefaults': case 'openDashboard': return true;
    case 'valuesChanged': case 'start': return isSettingValues(v.values);
    case 'control': return oneOf('pause', 'resume', 'stop')(v.action);
    default: return false;
  }
}
