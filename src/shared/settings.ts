/**
 * Run settings: the settings schema (what `python -m grpo config-schema` prints; a build-time copy of the
 * trainer's settings table is embedded), presets, validation, and settings → trainer argv. No `vscode`/Node
 * imports: shared by the host and the training view's page.
 */
import schemaJson from './generated/configSchema.json';
import { arrayOf, isNum, isObject, isStr, oneOf, type Checked } from './guards';
import type { Json } from './records';

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
/** The shape of setting values (scalars by key); whether each is valid for its setting is checkValues'. */
export const isSettingValues = (v: unknown): v is SettingValues =>
  isObject(v) && Object.values(v).every((x) => x === null || ['string', 'number', 'boolean'].includes(typeof x));

if (!isSettingsSchema(schemaJson)) throw new Error('embedded configSchema.json is invalid');
export const EMBEDDED_SCHEMA: SettingSpec[] = schemaJson as SettingSpec[];

/** Shown first in the form; the rest sit under "More settings". */
export const MAIN_KEYS = [
  'task', 'model', 'num_generations', 'beta', 'epsilon', 'loss_type', 'learning_rate', 'max_steps',
  'sft_steps', 'questions_per_step', 'max_completion_length', 'temperature', 'scale_rewards', 'device',
];

export interface Preset { id: string; label: string; overrides: SettingValues }
/** The embedded default comes first (an empty override set: exactly what `grpo train` runs by itself). */
export const PRESETS: Preset[] = [
  { id: 'default', label: 'Default (embedded)', overrides: {} },
  { id: 'quick', label: 'Quick check (short SFT, 10 steps)', overrides: { sft_steps: 50, max_steps: 10, eval_steps: 5, save_steps: 5 } },
  { id: 'dr_grpo', label: 'Dr. GRPO (no std scaling)', overrides: { loss_type: 'dr_grpo', scale_rewards: 'none' } },
  { id: 'dapo', label: 'DAPO (token mean, clip-higher)', overrides: { loss_type: 'dapo', epsilon_high: 0.28 } },
  { id: 'process', label: 'Process supervision', overrides: { reward: 'process' } },
];

export function defaultValues(schema: readonly SettingSpec[] = EMBEDDED_SCHEMA): SettingValues {
  return Object.fromEntries(schema.map((s) => [s.key, s.default]));
}

export function presetValues(preset: Preset, schema: readonly SettingSpec[] = EMBEDDED_SCHEMA): SettingValues {
  return { ...defaultValues(schema), ...preset.overrides };
}

/** Why a value is not acceptable for a setting (mirrors trainer/grpo/config.py), or null when it is. */
export function validateValue(spec: SettingSpec, value: Json): string | null {
  if (value === null) return spec.default === null ? null : `${spec.key} must be set`;
  switch (spec.type) {
    case 'str':
      if (typeof value !== 'string') return `${spec.key} must be text`;
      if (spec.choices && !spec.choices.includes(value)) return `${spec.key} must be one of ${spec.choices.join(', ')}`;
      return null;
    case 'bool':
      return typeof value === 'boolean' ? null : `${spec.key} must be true or false`;
    case 'int':
    case 'float': {
      if (typeof value !== 'number' || !Number.isFinite(value)) return `${spec.key} must be a number`;
      if (spec.type === 'int' && !Number.isInteger(value)) return `${spec.key} must be a whole number`;
      if (spec.min !== null && (value < spec.min || (spec.exclusive_min && value === spec.min)))
        return `${spec.key} must be ${spec.exclusive_min ? '>' : '≥'} ${spec.min}`;
      if (spec.max !== null && value > spec.max) return `${spec.key} must be ≤ ${spec.max}`;
      return null;
    }
  }
}

/** Parses what a user typed into a form field into the setting's type (empty → null for nullable keys). */
export function parseFieldText(spec: SettingSpec, text: string): Json {
  const t = text.trim();
  if (spec.type === 'str') return text;
  if (t === '') return spec.default === null ? null : NaN;
  if (spec.type === 'bool') return t === 'true' ? true : t === 'false' ? false : NaN;
  return Number(t);
}

export function formatFieldValue(value: Json): string {
  return value === null ? '' : String(value);
}

/** Keeps only known keys with valid values; returns the errors for the rest (for values read back from
 * storage, which may predate this schema). */
export function sanitizeValues(values: SettingValues, schema: readonly SettingSpec[] = EMBEDDED_SCHEMA): { values: SettingValues; errors: string[] } {
  const out = defaultValues(schema);
  const errors: string[] = [];
  for (const [key, v] of Object.entries(values)) {
    const spec = schema.find((s) => s.key === key);
    if (!spec) {
      errors.push(`unknown setting '${key}'`);
      continue;
    }
    const err = validateValue(spec, v);
    if (err) errors.push(err);
    else out[key] = v;
  }
  return { values: out, errors };
}

declare const checkedValues: unique symbol;
/** Every setting, each value valid for it: what checkValues returns and what the trainer's argv is made from. */
export type CheckedValues = SettingValues & { readonly [checkedValues]: true };

/** `values` (over the defaults) checked against the settings schema: the one validation on the way from the
 * form to the trainer's argv. Unknown keys and invalid values are errors, every one named. */
export function checkValues(values: SettingValues, schema: readonly SettingSpec[] = EMBEDDED_SCHEMA): Checked<CheckedValues> {
  const r = sanitizeValues(values, schema);
  return r.errors.length ? { ok: false, error: r.errors.join('; ') } : { ok: true, value: r.values as CheckedValues };
}

/** The `--set key=value` text the trainer parses back (JSON for numbers/bools/null, raw text for strings). */
export function formatSet(spec: SettingSpec, value: Json): string {
  return `${spec.key}=${spec.type === 'str' && typeof value === 'string' ? value : JSON.stringify(value)}`;
}

/** `--set` arguments for every value that differs from its default: the embedded default adds none. */
export function settingsToSetArgs(values: CheckedValues, schema: readonly SettingSpec[] = EMBEDDED_SCHEMA): string[] {
  const args: string[] = [];
  for (const spec of schema) {
    if (!(spec.key in values)) continue;
    const v = values[spec.key];
    if (v !== spec.default) args.push('--set', formatSet(spec, v));
  }
  return args;
}

/** The trainer's argument array (after the interpreter): never a shell string. */
export function trainArgs(opts: { runDir: string; values?: CheckedValues; resume?: boolean; schema?: readonly SettingSpec[] }): string[] {
  const args = ['-m', 'grpo', 'train', '--run-dir', opts.runDir];
  if (opts.resume) args.push('--resume');
  if (opts.values) args.push(...settingsToSetArgs(opts.values, opts.schema));
  return args;
}

/** Only the values that differ from defaults: what is remembered of the form per workspace. */
export function diffFromDefaults(values: SettingValues, schema: readonly SettingSpec[] = EMBEDDED_SCHEMA): SettingValues {
  const d = defaultValues(schema);
  return Object.fromEntries(Object.entries(values).filter(([k, v]) => k in d && d[k] !== v));
}

export type Launcher = 'python' | 'torchrun';

/**
 * The interpreter's arguments for a launcher (`grpo.launcher`, `grpo.processes`): `python -m grpo train …`
 * as it is, or the same under torchrun with N processes (data parallel, one GPU each; rank 0 writes the run
 * directory). torchrun is started as `python -m torch.distributed.run` so the interpreter that has torch
 * launches it; `--standalone` picks a free local rendezvous port.
 */
export function launchArgs(trainerArgs: readonly string[], launcher: Launcher, processes: number): string[] {
  if (launcher === 'python') return [...trainerArgs];
  if (launcher !== 'torchrun') throw new Error(`grpo.launcher must be python or torchrun, not ${JSON.stringify(launcher)}`);
  if (!Number.isInteger(processes) || processes < 1) throw new Error(`grpo.processes must be a whole number ≥ 1, not ${processes}`);
  if (trainerArgs[0] !== '-m') throw new Error('torchrun launches a module: the trainer arguments must start with -m');
  return ['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', String(processes), ...trainerArgs];
}
