/**
 * The What-if view's messages, host (./whatif.ts) ↔ page (webview/whatif/main.ts), and their guards; each side
 * validates what it receives. Also what the view offers to replay a logged step under: objective variants
 * with TRL's setting names (presets), and the free "key=value" field's parser, both checked against the
 * settings schema. No `vscode`, no Node modules: the page's bundle imports this.
 */
import { arrayOf, isNum, isObject, isStr, isWebviewLog, type Checked, type WebviewLog } from '../shared/guards';
import { checkReplayResult, type Json, type ReplayParams, type ReplayResult } from '../shared/records';
import { EMBEDDED_SCHEMA, isSettingValues, validateValue, type SettingSpec, type SettingValues } from '../shared/settings';

/** The trainer replays at most this many alternatives (the run's own settings come on top). */
export const MAX_VARIANTS = 8;
/** The settings a replay can change: the objective's (trainer/grpo/replay.py's REPLAYABLE; a unit test keeps
 * them equal). The same batch from the same state: what was sampled, and how, stays. */
export const REPLAYABLE_SETTINGS: readonly string[] = [
  'loss_type', 'scale_rewards', 'importance_sampling_level', 'epsilon', 'epsilon_high', 'mask_truncated_completions',
  'top_entropy_quantile', 'beta', 'num_iterations', 'max_grad_norm', 'learning_rate', 'micro_batch_size', 'logprob_chunk_tokens',
];
const notReplayable = (key: string) => `${key} cannot be replayed: only the objective's settings may change (${REPLAYABLE_SETTINGS.join(', ')})`;

export interface VariantPreset {
  id: string;
  /** the settings as TRL names them, shown on the checkbox */
  label: string;
  /** a short name for a column's head ("Dr. GRPO"), or null when the label says it all */
  short: string | null;
  title: string;
  settings: SettingValues;
  /** the chooser's row */
  family: 'loss' | 'ratio' | 'scale' | 'mask';
}

export const PRESET_FAMILIES: { family: VariantPreset['family']; label: string }[] = [
  { family: 'loss', label: 'loss_type' },
  { family: 'ratio', label: 'importance ratio' },
  { family: 'scale', label: 'scale_rewards' },
  { family: 'mask', label: 'clipping and masks' },
];

export const VARIANT_PRESETS: readonly VariantPreset[] = [
  { id: 'grpo', family: 'loss', label: 'grpo', short: 'GRPO', settings: { loss_type: 'grpo' }, title: 'loss_type=grpo: each sequence\'s token mean, then the mean over sequences (the paper)' },
  { id: 'dr_grpo', family: 'loss', label: 'dr_grpo', short: 'Dr. GRPO', settings: { loss_type: 'dr_grpo' }, title: 'loss_type=dr_grpo: the sum over tokens / (N · max_completion_length): no length bias' },
  { id: 'dapo', family: 'loss', label: 'dapo', short: 'DAPO loss', settings: { loss_type: 'dapo' }, title: 'loss_type=dapo: the token-level mean over the step\'s whole batch' },
  { id: 'bnpo', family: 'loss', label: 'bnpo', short: 'BNPO', settings: { loss_type: 'bnpo' }, title: 'loss_type=bnpo: the token-level mean over each forward pass\'s batch (TRL\'s)' },
  { id: 'gspo', family: 'ratio', label: 'importance_sampling_level=sequence (GSPO)', short: 'GSPO', settings: { importance_sampling_level: 'sequence' }, title: 'GSPO: one importance ratio per completion (the geometric mean of its token ratios), clipped per completion' },
  { id: 'scale_group', family: 'scale', label: 'group', short: null, settings: { scale_rewards: 'group' }, title: 'scale_rewards=group: advantages divided by their group\'s reward std (the paper)' },
  { id: 'scale_batch', family: 'scale', label: 'batch', short: null, settings: { scale_rewards: 'batch' }, title: 'scale_rewards=batch: advantages divided by the whole batch\'s reward std' },
  { id: 'scale_none', family: 'scale', label: 'none', short: null, settings: { scale_rewards: 'none' }, title: 'scale_rewards=none: advantages not divided by a std (Dr. GRPO)' },
  { id: 'clip_higher', family: 'mask', label: 'epsilon_high=0.28 (clip-higher)', short: 'clip-higher', settings: { epsilon_high: 0.28 }, title: 'DAPO\'s clip-higher: the ratio of a positive-advantage token may rise to 1.28 before it is clipped' },
  { id: 'mask_truncated', family: 'mask', label: 'mask_truncated_completions=true', short: 'mask truncated', settings: { mask_truncated_completions: true }, title: 'truncated completions (no EOS) get no policy gradient and no KL term (DAPO\'s overlong filtering)' },
  { id: 'top_entropy', family: 'mask', label: 'top_entropy_quantile=0.2', short: 'top-20% entropy', settings: { top_entropy_quantile: 0.2 }, title: 'only the 20% of tokens with the highest entropy keep the policy-gradient term' },
];

/** What a user chose: preset ids and the free field's text (remembered for the next What if…). */
export interface Chosen { presets: string[]; free: string }
export const DEFAULT_CHOSEN: Chosen = { presets: ['dr_grpo', 'gspo'], free: '' };
const isChosen = (v: unknown): v is Chosen => isObject(v) && arrayOf(isStr)(v.presets) && isStr(v.free);

/** A setting as `key=value` (strings bare, like the trainer's `--set`). */
export function formatSetting(key: string, v: Json): string {
  return `${key}=${typeof v === 'string' ? v : JSON.stringify(v)}`;
}

/** A variant's settings in words: "loss_type=dr_grpo, epsilon_high=0.28". */
export function describeSettings(s: Record<string, Json>): string {
  return Object.entries(s).map(([k, v]) => formatSetting(k, v)).join(', ');
}

/** The preset whose settings are exactly `s`, if one is. */
export function presetOf(s: Record<string, Json>): VariantPreset | null {
  const key = canonical(s);
  return VARIANT_PRESETS.find((p) => canonical(p.settings) === key) ?? null;
}

/** Whether a preset changes nothing for a run with settings `run` (its values are the run's own). */
export function sameAsRun(p: VariantPreset, run: SettingValues | null): boolean {
  return !!run && Object.entries(p.settings).every(([k, v]) => k in run && run[k] === v);
}

const canonical = (s: Record<string, Json>) => JSON.stringify(Object.keys(s).sort().map((k) => [k, s[k]]));

function parseValue(spec: SettingSpec, text: string): Json {
  const t = text.trim();
  if (/^(null|none)$/i.test(t) && spec.default === null) return null;
  switch (spec.type) {
    case 'str': return t.replace(/^(["'])(.*)\1$/, '$2');
    case 'bool': return /^(true|yes|on|1)$/i.test(t) ? true : /^(false|no|off|0)$/i.test(t) ? false : NaN;
    default: return t === '' ? NaN : Number(t);
  }
}

/**
 * The free field: variants separated by `;`, each one or more `key=value` separated by commas or spaces
 * ("loss_type=dapo, epsilon_high=0.28; beta=0" is two variants). Every key must be a setting and every value
 * valid for it; each problem is named. Empty text: no variant.
 */
export function parseFreeVariants(text: string, schema: readonly SettingSpec[] = EMBEDDED_SCHEMA): Checked<SettingValues[]> {
  const out: SettingValues[] = [];
  const errors: string[] = [];
  for (const chunk of text.split(';')) {
    if (!chunk.trim()) continue;
    const v: SettingValues = {};
    for (const part of chunk.split(/[\s,]+/).filter(Boolean)) {
      const eq = part.indexOf('=');
      if (eq <= 0) {
        errors.push(`'${part}' is not key=value`);
        continue;
      }
      const key = part.slice(0, eq).trim();
      const spec = schema.find((s) => s.key === key);
      if (!spec) {
        errors.push(`unknown setting '${key}'`);
        continue;
      }
      if (!REPLAYABLE_SETTINGS.includes(key)) {
        errors.push(notReplayable(key));
        continue;
      }
      const value = parseValue(spec, part.slice(eq + 1));
      const err = validateValue(spec, value);
      if (err) errors.push(err);
      else v[key] = value;
    }
    if (Object.keys(v).length) out.push(v);
  }
  return errors.length ? { ok: false, error: errors.join('; ') } : { ok: true, value: out };
}

/** Checks one variant from the page (known settings, valid values), as the host does before asking. */
export function checkVariant(v: SettingValues, schema: readonly SettingSpec[] = EMBEDDED_SCHEMA): string | null {
  if (!Object.keys(v).length) return 'a variant changes no setting';
  for (const [k, value] of Object.entries(v)) {
    const spec = schema.find((s) => s.key === k);
    if (!spec) return `unknown setting '${k}'`;
    if (!REPLAYABLE_SETTINGS.includes(k)) return notReplayable(k);
    const err = validateValue(spec, value);
    if (err) return err;
  }
  return null;
}

/**
 * The replay request for a choice: the chosen presets (in the chooser's order), then the free field's
 * variants; a variant chosen twice is asked once; at most MAX_VARIANTS.
 */
export function replayParams(step: number, chosen: Chosen, schema: readonly SettingSpec[] = EMBEDDED_SCHEMA): Checked<ReplayParams & { variants: SettingValues[] }> {
  const free = parseFreeVariants(chosen.free, schema);
  if (!free.ok) return free;
  const all = [...VARIANT_PRESETS.filter((p) => chosen.presets.includes(p.id)).map((p) => ({ ...p.settings })), ...free.value];
  const seen = new Set<string>();
  const variants = all.filter((v) => {
    const k = canonical(v);
    return seen.has(k) ? false : (seen.add(k), true);
  });
  if (variants.length > MAX_VARIANTS) return { ok: false, error: `at most ${MAX_VARIANTS} variants at once (${variants.length} chosen)` };
  return { ok: true, value: { step, variants } };
}

/** What to say about a step the run has no replay record of (null when it has one). */
export function missingRecordNote(step: number, replayable: readonly number[]): string | null {
  if (replayable.includes(step)) return null;
  return replayable.length
    ? `This run has no replay record of step ${step}: it keeps them at log_samples_steps, the newest replay_total_limit of them. Replayable steps:`
    : `This run has no replay record yet (the trainer keeps them at log_samples_steps while replay_total_limit > 0; runs from before replay have none). Replaying step ${step} will say why.`;
}

// ---------------------------------------------------------------------------------------------------
// Messages

/** Where the request stands. */
export type WhatIfPhase =
  | { kind: 'choose' }
  | { kind: 'loading'; variants: SettingValues[]; since: number }
  | { kind: 'result'; result: ReplayResult; source: string }
  | { kind: 'error'; message: string }
  | { kind: 'cancelled' };

/** Everything the page shows, sent whole (on `ready` and on every change). */
export interface WhatIfView {
  runDir: string;
  runName: string;
  step: number;
  /** the run's settings (config.json), for "this run" marks; null when unreadable */
  runSettings: SettingValues | null;
  /** the steps with a complete replay record (replay/step_N/ with its checksums.json), read when shown; the
   * trainer decides (a live run adds and prunes records as it trains) */
  replayable: number[];
  chosen: Chosen;
  phase: WhatIfPhase;
}

const isPhase = (v: unknown): v is WhatIfPhase => {
  if (!isObject(v)) return false;
  switch (v.kind) {
    case 'choose': case 'cancelled': return true;
    case 'loading': return arrayOf(isSettingValues)(v.variants) && isNum(v.since);
    case 'result': return checkReplayResult(v.result).ok && isStr(v.source);
    case 'error': return isStr(v.message);
    default: return false;
  }
};

export type HostToWhatIf = { type: 'view'; view: WhatIfView };

export function isHostToWhatIf(v: unknown): v is HostToWhatIf {
  if (!isObject(v) || v.type !== 'view' || !isObject(v.view)) return false;
  const w = v.view;
  return isStr(w.runDir) && isStr(w.runName) && isNum(w.step) && (w.runSettings === null || isSettingValues(w.runSettings)) && arrayOf(isNum)(w.replayable) &&
    isChosen(w.chosen) && isPhase(w.phase);
}

export type WhatIfToHost =
  | { type: 'ready' }
  /** replay the step under `variants` (what `chosen` made of them, remembered for next time) */
  | { type: 'replay'; variants: SettingValues[]; chosen: Chosen }
  | { type: 'cancel' }
  /** show another step of the same run (one of `replayable`) */
  | { type: 'openStep'; step: number }
  | WebviewLog;

export function isWhatIfToHost(v: unknown): v is WhatIfToHost {
  if (!isObject(v)) return false;
  switch (v.type) {
    case 'ready': case 'cancel': return true;
    case 'openStep': return isNum(v.step) && Number.isInteger(v.step) && v.step >= 0;
    case 'replay': return arrayOf(isSettingValues)(v.variants) && v.variants.length <= MAX_VARIANTS && isChosen(v.chosen);
    case 'log': return isWebviewLog(v);
    default: return false;
  }
}
