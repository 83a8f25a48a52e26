/**
 * The trainer's boundary: its records and messages, and their guards.
 *
 *  - run-directory records: status.json, metrics.jsonl, events.jsonl and samples.jsonl rows
 *  - trainer → host: JSON lines on the trainer's stdout (docs/run-directory.md, "The live stream")
 *  - host → trainer: control and inspection requests, JSON lines on the trainer's stdin
 *
 * They are defined once, in trainer/grpo/records.py; their types and the schema the guards below check
 * against are generated into ./generated/protocol.ts (`npm run gen:protocol`), and re-exported here, so
 * this is the one module to import them from. The settings schema is ./settings.ts's; each webview's
 * messages are in a protocol file beside that webview's host code. Imported by the extension host and by
 * the webview bundles: no `vscode`, no Node modules.
 */

import { isNum, isObject, isStr, type Checked, type Obj } from './guards';
import { PROTOCOL_VERSION, SCHEMA } from './generated/protocol';
import type { ControlRequest, ControlType, InspectRequests, Json, MetricsRow, Records, TokenArrays } from './generated/protocol';

export { CONTROL_TYPES, EVENT_KINDS, GROUP_KINDS, INSPECT_TYPES, PHASES, PROTOCOL_VERSION, RUN_STATES } from './generated/protocol';
export type {
  CheckpointEvent, CompareParams, CompareResult, CompareSide, ControlEvent, ControlRequest, ControlType, ErrorEvent, EvalEvent,
  EventKind, GroupKind, GroupRecord, InspectRequests, Json, KnownEvent, MetricsRow, Phase, PhaseEvent, PolicySide, ReferenceSide, RefResetEvent,
  ReplayCompletion, ReplayParams, ReplayResult, ReplayVariant, ResumeEvent, RunEvent, RunState, RunStatus, SampleGroupParams, ScoreParams, ScoreResult, Source, TokenArrays, TrainerMessage,
  WarningEvent,
} from './generated/protocol';
export type { PreflightProblem, PreflightReport, QuestionsRow, Verdict } from './generated/protocol';
export type { RescoreParams, RescoreResult } from './generated/protocol';
export { VERDICTS } from './generated/protocol';
export type { Checked } from './guards';

// ---------------------------------------------------------------------------------------------------
// Guards driven by the generated schema's records, driven by the generated schema (records.py's rules: known fields are
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
/** A questions.jsonl row (the prompt atlas): `passed` has one count per question. */
export const checkQuestionsRow = checker('QuestionsRow', 'questions row');
/** `python -m grpo preflight --json`'s report (its last stdout line). */
export const checkPreflightReport = checker('PreflightReport', 'preflight report');

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
export const checkReplayResult = checker('ReplayResult', 'replay result');
export const checkRescoreResult = checker('RescoreResult', 'rescore result');

export type InspectRequestType = keyof InspectRequests;
/** The guard for each inspection request's answer. */
export const INSPECT_RESULT_CHECKS: { [K in InspectRequestType]: (v: unknown) => Checked<InspectRequests[K]['result']> } = {
  sample_group: checkGroupRecord,
  score: checkScoreResult,
  compare: checkCompareResult,
  replay: checkReplayResult,
  rescore: checkRescoreResult,
};

/** One stdin line: `{"v":1,"type":…,"id":…, …params}`. */
export function encodeRequest<K extends InspectRequestType>(type: K, id: string, params: InspectRequests[K]['params']): string {
  return JSON.stringify({ ...params, v: PROTOCOL_VERSION, type, id }) + '\n';
}
