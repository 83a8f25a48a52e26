/**
 * The one protocol module: every message that crosses a process or sandbox boundary.
 *
 *  - trainer → host: JSON lines on the trainer's stdout (docs/run-directory.md, "The live stream")
 *  - host → trainer: control and inspection requests, JSON lines on the trainer's stdin
 *  - run-directory records: status.json, metrics.jsonl, events.jsonl and samples.jsonl rows
 *  - host ↔ webview: the dashboard's, the training panel's and the inspectors' messages
 *
 * The trainer-facing records are defined once, in trainer/grpo/records.py; their types and the schema the
 * guards below check against are generated into ./generated/protocol.ts (`npm run gen:protocol`). Only the
 * host ↔ webview messages, which never reach Python, are written here by hand. Every boundary validates what
 * it receives. Imported by the extension host and by the webview bundles: no `vscode`, no Node modules.
 */

import { PROTOCOL_VERSION, SCHEMA } from './generated/protocol';
import type { CompareResult, ControlRequest, ControlType, EvalEvent, GroupRecord, InspectRequests, Json, MetricsRow, Phase, Records, RunEvent, RunState, RunStatus, TokenArrays } from './generated/protocol';

export { CONTROL_TYPES, EVENT_KINDS, INSPECT_TYPES, PHASES, PROTOCOL_VERSION, RUN_STATES } from './generated/protocol';
export type {
  CheckpointEvent, CompareParams, CompareResult, CompareSide, ControlEvent, ControlRequest, ControlType, ErrorEvent, EvalEvent,
  EventKind, GroupRecord, InspectRequests, Json, KnownEvent, MetricsRow, Phase, PhaseEvent, PolicySide, ReferenceSide, RefResetEvent,
  ResumeEvent, RunEvent, RunState, RunStatus, SampleGroupParams, ScoreParams, ScoreResult, Source, TokenArrays, TrainerMessage,
  WarningEvent,
} from './generated/protocol';

// ---------------------------------------------------------------------------------------------------
// Small guard helpers

type Obj = Record<string, unknown>;

export function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isStr = (v: unknown): v is string => typeof v === 'string';
const isNumOrNull = (v: unknown): v is number | null => v === null || isNum(v);
const isStrOrNull = (v: unknown): v is string | null => v === null || isStr(v);
const oneOf = <T extends string>(...xs: readonly T[]) => (v: unknown): v is T => isStr(v) && (xs as readonly string[]).includes(v);
const arrayOf = <T>(g: (v: unknown) => v is T) => (v: unknown): v is T[] => Array.isArray(v) && v.every(g);

/** A validation result that says what was wrong, for logs and error messages. */
export type Checked<T> = { ok: true; value: T } | { ok: false; error: string };

// ---------------------------------------------------------------------------------------------------
// Guards for the trainer's records, driven by the generated schema (records.py's rules: known fields are
// typed, lists that go together have equal lengths, unknown fields are kept, absent fields with a default get it)

interface SchemaType { t: string; name?: string; union?: string; values?: readonly unknown[]; of?: SchemaType | readonly SchemaType[]; items?: readonly SchemaType[] }
interface SchemaField { name: string; type: SchemaType; required: boolean; default?: Json; len?: { of: string; noun: string; unit: string }; paired?: string }
interface SchemaRecord { fields: readonly SchemaField[]; extra?: SchemaType }
interface SchemaUnion { tag: string; variants: Record<string, string>; fallback: string | null }
const S = SCHEMA as unknown as { enums: Record<string, readonly unknown[]>; records: Record<string, SchemaRecord>; unions: Record<string, SchemaUnion> };

/** Why a value does not conform: the offending field's path below the value checked (`tokens[1].kl`). */
class Failure {
  constructor(readonly path: string, readonly problem: string | null = null) {}
  /** The same failure seen from the parent, which holds the value at `step` (a field name or `[i]`). */
  under(step: string): Failure {
    const path = !this.path ? step : this.path.startsWith('[') ? step + this.path : `${step}.${this.path}`;
    return new Failure(path, this.problem);
  }
}
const BAD = new Failure('');
/** Field names by record, for telling extra fields from known ones. */
const KNOWN = new Map(Object.entries(S.records).map(([name, r]) => [name, new Set(r.fields.map((f) => f.name))]));

/** `v` as schema type `t` (a copy where defaults were filled in), or the Failure. Paths are built only
 * on failure: a group's token arrays hold tens of thousands of numbers. */
function conform(t: SchemaType, v: unknown): unknown {
  switch (t.t) {
    case 'any': return v;
    case 'null': return v === null ? v : BAD;
    case 'bool': return typeof v === 'boolean' ? v : BAD;
    case 'int': return Number.isInteger(v) ? v : BAD;
    case 'float': return isNum(v) ? v : BAD;
    case 'str': return isStr(v) ? v : BAD;
    case 'enum': return S.enums[t.name!].includes(v) ? v : BAD;
    case 'literal': return t.values!.includes(v) ? v : BAD;
    case 'union': {
      for (const o of t.of as readonly SchemaType[]) {
        const r = conform(o, v);
        if (!(r instanceof Failure)) return r;
      }
      return BAD;
    }
    case 'list': case 'tuple': {
      if (!Array.isArray(v) || (t.items && v.length !== t.items.length)) return BAD;
      if ((t.of as SchemaType | undefined)?.t === 'float') { // per-token arrays: the bulk of a group
        const i = v.findIndex((x) => !isNum(x));
        return i < 0 ? v : BAD.under(`[${i}]`);
      }
      let out: unknown[] | null = null;
      for (let i = 0; i < v.length; i++) {
        const r = conform(t.items ? t.items[i] : (t.of as SchemaType), v[i]);
        if (r instanceof Failure) return r.under(`[${i}]`);
        if (r !== v[i]) (out ??= v.slice())[i] = r;
      }
      return out ?? v;
    }
    case 'dict': {
      if (!isObject(v)) return BAD;
      for (const [k, x] of Object.entries(v)) {
        const r = conform(t.of as SchemaType, x);
        if (r instanceof Failure) return r.under(k);
      }
      return v;
    }
    case 'ref': return t.union ? conformUnion(t.union, v) : conformRecord(t.name!, v);
    default: return new Failure('', `has a type the guard does not know (${t.t})`);
  }
}

function conformRecord(name: string, v: unknown): unknown {
  if (!isObject(v)) return BAD;
  const rec = S.records[name];
  let out: Obj | null = null;
  for (const f of rec.fields) {
    if (v[f.name] === undefined) {
      if (f.default !== undefined) (out ??= { ...v })[f.name] = f.default;
      else if (f.required) return BAD.under(f.name);
      continue;
    }
    const r = conform(f.type, v[f.name]);
    if (r instanceof Failure) return r.under(f.name);
    if (r !== v[f.name]) (out ??= { ...v })[f.name] = r;
  }
  for (const f of rec.fields) {
    const x = v[f.name];
    if (!Array.isArray(x)) continue;
    const of = f.len && v[f.len.of];
    if (f.len && Array.isArray(of) && x.length !== of.length) {
      return new Failure(f.name, `has ${x.length} ${f.len.unit} for ${of.length} ${f.len.noun}`);
    }
    const other = f.paired ? v[f.paired] : undefined;
    if (Array.isArray(other)) {
      for (let i = 0; i < Math.min(x.length, other.length); i++) {
        const a = x[i], b = other[i];
        if (Array.isArray(a) && Array.isArray(b) && a.length !== b.length) {
          return new Failure(`${f.name}[${i}]`, `has ${a.length} values for the ${b.length} of '${f.paired}[${i}]'`);
        }
      }
    }
  }
  if (rec.extra) {
    const known = KNOWN.get(name)!;
    for (const [k, x] of Object.entries(v)) {
      if (!known.has(k) && x !== undefined && conform(rec.extra, x) instanceof Failure) return new Failure(k, `is not ${describe(rec.extra)}`);
    }
  }
  return out ?? v;
}

function conformUnion(name: string, v: unknown): unknown {
  if (!isObject(v)) return BAD;
  const u = S.unions[name];
  const tag = v[u.tag];
  const variant = (typeof tag === 'string' && Object.hasOwn(u.variants, tag) ? u.variants[tag] : null) ?? u.fallback;
  if (variant === null) return new Failure(u.tag, `is unknown: ${JSON.stringify(tag)}`);
  return conformRecord(variant, v);
}

const describe = (t: SchemaType): string =>
  t.t === 'union' ? (t.of as SchemaType[]).map(describe).join(' or ') : ({ float: 'a finite number', int: 'a whole number', null: 'null', str: 'a string', bool: 'true or false' } as Record<string, string>)[t.t] ?? t.t;

/** Checks `v` as the record (or tagged union) `name`; `label` names it in the error message. */
function checkAs<K extends keyof Records>(name: K, v: unknown, label: string): Checked<Records[K]> {
  if (!isObject(v)) return { ok: false, error: `${label} is not an object` };
  const r = name in S.unions ? conformUnion(name, v) : conformRecord(name, v);
  if (!(r instanceof Failure)) return { ok: true, value: r as Records[K] };
  return { ok: false, error: `${label} field '${r.path}' ${r.problem ?? 'is missing or invalid'}` };
}
const checker = <K extends keyof Records>(name: K, label: string) => (v: unknown) => checkAs(name, v, label);

// ---------------------------------------------------------------------------------------------------
// Run-directory records

export const checkStatus = checker('RunStatus', 'status');
export const checkMetricsRow = checker('MetricsRow', 'metrics row');
/** An events.jsonl row, checked by its `kind`; an unknown kind is kept (forward compatible), not interpreted. */
export const checkEvent = checker('KnownEvent', 'event');
export const checkTokenArrays = checker('TokenArrays', 'tokens');
export const checkGroupRecord = checker('GroupRecord', 'group');

const fieldNames = (name: string) => S.records[name].fields.map((f) => f.name);
/** The metrics the trainer writes (metrics.jsonl; the dashboard charts any numeric key). */
export const METRIC_KEYS: readonly (keyof MetricsRow & string)[] = fieldNames('MetricsRow').filter((k) => k !== 'step' && k !== 'time') as (keyof MetricsRow & string)[];
export type MetricKey = (typeof METRIC_KEYS)[number];
/** The per-token arrays of a completion, besides `text`. */
export const TOKEN_ARRAY_KEYS = fieldNames('TokenArrays').filter((k) => k !== 'text') as readonly Exclude<keyof TokenArrays, 'text'>[];

// ---------------------------------------------------------------------------------------------------
// Trainer → host: the live stream (stdout)

export function checkTrainerMessage(v: unknown): Checked<Records['TrainerMessage']> {
  if (!isObject(v)) return { ok: false, error: 'line is not a JSON object' };
  if (v.v !== PROTOCOL_VERSION) return { ok: false, error: `unsupported protocol version ${JSON.stringify(v.v)}` };
  if (!isStr(v.type) || !Object.hasOwn(S.unions.TrainerMessage.variants, v.type)) return { ok: false, error: `unknown message type ${JSON.stringify(v.type)}` };
  return checkAs('TrainerMessage', v, `'${v.type}' message`);
}

// ---------------------------------------------------------------------------------------------------
// Host → trainer: control requests (stdin)

export function controlRequest(type: ControlType, id?: string): ControlRequest {
  return id === undefined ? { v: 1, type } : { v: 1, type, id };
}
export function encodeControl(req: ControlRequest): string {
  return JSON.stringify(req) + '\n';
}
export const isControlRequest = (v: unknown): v is ControlRequest => checkAs('ControlRequest', v, 'control request').ok;

// ---------------------------------------------------------------------------------------------------
// Inspection (issue 4): sampled groups, per-token scores, policy vs reference.
// Requests go to a live `train` process or to `python -m grpo serve` over stdin; both answer with a
// `response` line carrying the same `id` (docs/run-directory.md, "Inspection requests").

export const checkScoreResult = checker('ScoreResult', 'score result');
export const checkCompareResult = checker('CompareResult', 'compare result');

export type InspectRequestType = keyof InspectRequests;
/** The guard for each inspection request's answer. */
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

/**
 * The held-out evaluation of the start (the eval event at step 0, written when SFT ends and GRPO has not yet
 * stepped) as a metrics row, so that the held-out charts begin where GRPO starts. Later evaluations are in
 * their step's metrics row already. The keys are the trainer's (`EvalReport.metrics()` in evaluation.py).
 */
export function startEvalRow(ev: RunEvent): MetricsRow | null {
  if (ev.kind !== 'eval' || ev.step !== 0) return null;
  const e = ev as EvalEvent;
  const row: MetricsRow = { step: 0, time: e.time, 'eval/accuracy': e.accuracy };
  for (const [prefix, byK] of [['pass', e.pass_at_k], ['maj', e.maj_at_k]] as const) {
    for (const [k, v] of Object.entries(byK ?? {})) row[`eval/${prefix}@${k}`] = v;
  }
  return row;
}

/** `rows` with the start's row first (in place of any earlier step-0 row): metrics rows begin at step 1. */
export function withStartRow(rows: MetricsRow[], start: MetricsRow | null): MetricsRow[] {
  if (!start) return rows;
  return rows[0]?.step === 0 ? [start, ...rows.slice(1)] : [start, ...rows];
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
