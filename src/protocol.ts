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
  // held-out pass@k / maj@k for the default eval_k (1,4,8,16); rows carry them on sampled evaluations only
  'eval/pass@1', 'eval/pass@4', 'eval/pass@8', 'eval/pass@16', 'eval/maj@1', 'eval/maj@4', 'eval/maj@8', 'eval/maj@16',
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

export const EVENT_KINDS = ['phase', 'eval', 'decontamination', 'checkpoint', 'ref_reset', 'warning', 'error', 'control'] as const;
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
  // `train` sends `config` and `resumed_from`; `serve` sends `checkpoint` and `step` (its readiness line).
  | { v: 1; type: 'started'; run_dir: string | null; pid: number; config?: Record<string, Json>; resumed_from: number | null; checkpoint?: string; step?: number | null }
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
      const bad = badField(v, { run_dir: isStrOrNull, pid: isNum, config: optional(isObject), resumed_from: optional(isNumOrNull), checkpoint: optional(isStr), step: optional(isNumOrNull) });
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
// Inspection (issue 4): sampled groups, per-token scores, policy vs reference.
// Requests go to a live `train` process or to `python -m grpo serve` over stdin; both answer with a
// `response` line carrying the same `id` (docs/run-directory.md, "Inspection requests").

/** Per-token arrays of one completion (samples.jsonl `tokens[i]`); every array has one entry per token. */
export interface TokenArrays {
  text: string[];
  logp: number[];
  old_logp: number[];
  ref_logp: number[];
  kl: number[];
  advantage: number[];
  entropy: number[];
}
export const TOKEN_ARRAY_KEYS = ['logp', 'old_logp', 'ref_logp', 'kl', 'advantage', 'entropy'] as const;

/** One whole group: a samples.jsonl record, or what `sample_group` answers (plus its `source`). */
export interface GroupRecord {
  step?: number;
  question: string;
  answer: string | null;
  prompt: string;
  completions: string[];
  rewards: number[];
  correct?: boolean[];
  advantages: number[];
  truncated: boolean[];
  tokens: TokenArrays[];
  step_rewards?: number[][];
  step_ends?: number[][];
  source?: { checkpoint: string | null; step: number | null; [key: string]: unknown };
  [key: string]: unknown;
}

const isNumArray = (v: unknown): v is number[] => Array.isArray(v) && v.every(isNum);
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';

export function checkTokenArrays(v: unknown, where = 'tokens'): Checked<TokenArrays> {
  if (!isObject(v)) return { ok: false, error: `${where} is not an object` };
  if (!arrayOf(isStr)(v.text)) return { ok: false, error: `${where}.text must be a list of strings` };
  const n = v.text.length;
  for (const k of TOKEN_ARRAY_KEYS) {
    const a = v[k];
    if (!isNumArray(a)) return { ok: false, error: `${where}.${k} must be a list of finite numbers` };
    if (a.length !== n) return { ok: false, error: `${where}.${k} has ${a.length} values for ${n} tokens` };
  }
  return { ok: true, value: v as unknown as TokenArrays };
}

export function checkGroupRecord(v: unknown): Checked<GroupRecord> {
  if (!isObject(v)) return { ok: false, error: 'group is not an object' };
  const bad = badField(v, {
    question: isStr, answer: isStrOrNull, prompt: isStr, completions: arrayOf(isStr), rewards: isNumArray,
    correct: optional(arrayOf(isBool)), advantages: isNumArray, truncated: arrayOf(isBool), tokens: Array.isArray,
    step: optional(isNum), step_rewards: optional(arrayOf(isNumArray)), step_ends: optional(arrayOf(isNumArray)),
  });
  if (bad) return { ok: false, error: `group field '${bad}' is missing or invalid` };
  const g = (v.completions as string[]).length;
  for (const k of ['rewards', 'correct', 'advantages', 'truncated', 'tokens', 'step_rewards', 'step_ends']) {
    const a = v[k] as unknown[] | undefined;
    if (a !== undefined && a.length !== g) return { ok: false, error: `group field '${k}' has ${a.length} entries for ${g} completions` };
  }
  for (let i = 0; i < g; i++) {
    const t = checkTokenArrays((v.tokens as unknown[])[i], `tokens[${i}]`);
    if (!t.ok) return t as Checked<GroupRecord>;
    const ends = (v.step_ends as number[][] | undefined)?.[i];
    const rewards = (v.step_rewards as number[][] | undefined)?.[i];
    if (ends && rewards && ends.length !== rewards.length) return { ok: false, error: `step_ends[${i}] and step_rewards[${i}] differ in length` };
  }
  if (v.source !== undefined && !(isObject(v.source) && isStrOrNull(v.source.checkpoint) && isNumOrNull(v.source.step))) {
    return { ok: false, error: "group field 'source' is invalid" };
  }
  return { ok: true, value: v as unknown as GroupRecord };
}

/** `score`: `text` as a continuation of `prompt` under policy and reference. */
export interface ScoreResult {
  tokens: string[];
  offsets: [number, number][]; // char offsets into `text`
  logp: number[];
  ref_logp: number[];
  kl: number[];
  entropy: number[];
  sequence_kl: number;
  sum_logp: number;
  sum_ref_logp: number;
  step: number | null; // null: a model directory that is not a training checkpoint
}

const isOffset = (v: unknown): v is [number, number] => Array.isArray(v) && v.length === 2 && isNum(v[0]) && isNum(v[1]);

export function checkScoreResult(v: unknown): Checked<ScoreResult> {
  if (!isObject(v)) return { ok: false, error: 'score result is not an object' };
  const bad = badField(v, {
    tokens: arrayOf(isStr), offsets: arrayOf(isOffset), logp: isNumArray, ref_logp: isNumArray, kl: isNumArray, entropy: isNumArray,
    sequence_kl: isNum, sum_logp: isNum, sum_ref_logp: isNum, step: isNumOrNull,
  });
  if (bad) return { ok: false, error: `score result field '${bad}' is missing or invalid` };
  const n = (v.tokens as string[]).length;
  for (const k of ['offsets', 'logp', 'ref_logp', 'kl', 'entropy']) {
    if ((v[k] as unknown[]).length !== n) return { ok: false, error: `score result field '${k}' has ${(v[k] as unknown[]).length} values for ${n} tokens` };
  }
  return { ok: true, value: v as unknown as ScoreResult };
}

/** One side of `compare`: a greedy (or sampled) completion and its per-token numbers under both models. */
export interface CompareSide {
  completion: string;
  tokens: string[];
  logp: number[]; // under the model that wrote this side
  kl: number[];
  logp_diff: number[]; // logp_policy − logp_ref per token
  ref_logp?: number[]; // policy side: the reference's log-probs
  policy_logp?: number[]; // reference side: the policy's log-probs
}
export interface CompareResult {
  question: string;
  prompt: string;
  policy: CompareSide;
  reference: CompareSide;
  sequence_kl: { policy: number; reference: number };
}

function checkCompareSide(v: unknown, which: 'policy' | 'reference'): string | null {
  if (!isObject(v)) return `'${which}' is not an object`;
  const other = which === 'policy' ? 'ref_logp' : 'policy_logp';
  const bad = badField(v, { completion: isStr, tokens: arrayOf(isStr), logp: isNumArray, kl: isNumArray, logp_diff: isNumArray, [other]: isNumArray });
  if (bad) return `'${which}.${bad}' is missing or invalid`;
  const n = (v.tokens as string[]).length;
  for (const k of ['logp', 'kl', 'logp_diff', other]) if ((v[k] as unknown[]).length !== n) return `'${which}.${k}' has ${(v[k] as unknown[]).length} values for ${n} tokens`;
  return null;
}

export function checkCompareResult(v: unknown): Checked<CompareResult> {
  if (!isObject(v)) return { ok: false, error: 'compare result is not an object' };
  const bad = badField(v, { question: isStr, prompt: isStr });
  if (bad) return { ok: false, error: `compare result field '${bad}' is missing or invalid` };
  const e = checkCompareSide(v.policy, 'policy') ?? checkCompareSide(v.reference, 'reference');
  if (e) return { ok: false, error: `compare result: ${e}` };
  if (!isObject(v.sequence_kl) || !isNum(v.sequence_kl.policy) || !isNum(v.sequence_kl.reference)) return { ok: false, error: "compare result field 'sequence_kl' is missing or invalid" };
  return { ok: true, value: v as unknown as CompareResult };
}

export interface SampleGroupParams { question: string; answer?: string | null; num_generations?: number; temperature?: number; max_completion_length?: number; seed?: number }
export interface ScoreParams { text: string; prompt?: string }
export interface CompareParams { question: string; max_completion_length?: number; temperature?: number; seed?: number }

/** Each inspection request with its parameters and the guard for its answer. */
export interface InspectRequests {
  sample_group: { params: SampleGroupParams; result: GroupRecord };
  score: { params: ScoreParams; result: ScoreResult };
  compare: { params: CompareParams; result: CompareResult };
}
export type InspectRequestType = keyof InspectRequests;
export const INSPECT_RESULT_CHECKS: { [K in InspectRequestType]: (v: unknown) => Checked<InspectRequests[K]['result']> } = {
  sample_group: checkGroupRecord,
  score: checkScoreResult,
  compare: checkCompareResult,
};

/** One stdin line: `{"v":1,"type":…,"id":…, …params}`. */
export function encodeRequest<K extends InspectRequestType>(type: K, id: string, params: InspectRequests[K]['params']): string {
  return JSON.stringify({ ...params, v: PROTOCOL_VERSION, type, id }) + '\n';
}

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

// ---------------------------------------------------------------------------------------------------
// Host ↔ inspection webviews (group inspector with its token heatmap; policy vs reference compare)

/** What a token heatmap can be coloured by. `ratio` is π_θ/π_old; `logp_diff` is log π_θ − log π_ref. */
export const QUANTITIES = ['advantage', 'ratio', 'kl', 'logp', 'entropy', 'logp_diff'] as const;
export type Quantity = (typeof QUANTITIES)[number];
export const isQuantity = oneOf(...QUANTITIES);

/** Where a group came from, for titles and follow-up requests. */
export interface GroupOrigin {
  runDir: string;
  checkpoint: string | null; // null: the live trainer's current policy, or a logged training group
  step: number | null;
  logged: boolean; // from samples.jsonl (training), not sampled on request
}
const isGroupOrigin = (v: unknown): v is GroupOrigin =>
  isObject(v) && isStr(v.runDir) && isStrOrNull(v.checkpoint) && isNumOrNull(v.step) && typeof v.logged === 'boolean';

export type HostToInspector =
  | { type: 'group'; group: GroupRecord; origin: GroupOrigin; title: string; focus: number | null; quantity: Quantity | null }
  | { type: 'error'; message: string };

export function isHostToInspector(v: unknown): v is HostToInspector {
  if (!isObject(v)) return false;
  switch (v.type) {
    case 'group': return checkGroupRecord(v.group).ok && isGroupOrigin(v.origin) && isStr(v.title) && isNumOrNull(v.focus) && (v.quantity === null || isQuantity(v.quantity));
    case 'error': return isStr(v.message);
    default: return false;
  }
}

export type InspectorToHost =
  | { type: 'ready' }
  | { type: 'openCompletion'; index: number }
  | { type: 'log'; level: 'info' | 'error'; message: string };

export function isInspectorToHost(v: unknown): v is InspectorToHost {
  if (!isObject(v)) return false;
  switch (v.type) {
    case 'ready': return true;
    case 'openCompletion': return isNum(v.index) && Number.isInteger(v.index) && v.index >= 0;
    case 'log': return oneOf('info', 'error')(v.level) && isStr(v.message);
    default: return false;
  }
}

export type HostToCompare =
  | { type: 'compare'; result: CompareResult; title: string }
  | { type: 'error'; message: string };

export function isHostToCompare(v: unknown): v is HostToCompare {
  if (!isObject(v)) return false;
  switch (v.type) {
    case 'compare': return checkCompareResult(v.result).ok && isStr(v.title);
    case 'error': return isStr(v.message);
    default: return false;
  }
}

export type CompareToHost =
  | { type: 'ready' }
  | { type: 'log'; level: 'info' | 'error'; message: string };

export function isCompareToHost(v: unknown): v is CompareToHost {
  if (!isObject(v)) return false;
  switch (v.type) {
    case 'ready': return true;
    case 'log': return oneOf('info', 'error')(v.level) && isStr(v.message);
    default: return false;
  }
}
