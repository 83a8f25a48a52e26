/**
 * The training view's messages, host (./trainingView.ts) ↔ page (webview/panel/main.ts), and their
 * guards; each side validates what it receives. No `vscode`, no Node modules: the page's bundle imports this.
 */
import { isNum, isObject, isStr, oneOf } from '../shared/guards';
import type { Phase, RunState } from '../shared/records';
import { isSettingsSchema, isSettingValues, type SettingSpec, type SettingValues } from '../shared/settings';
import { checkPreflightReport } from '../shared/records';
import type { PreflightState } from './preflight';

export type { PreflightState } from './preflight';
const isPreflightState = (v: unknown): v is PreflightState =>
  isObject(v) && oneOf('idle', 'running', 'done', 'failed', 'cancelled')(v.status) && (v.key === null || isStr(v.key)) &&
  (v.progress === null || isStr(v.progress)) && (v.error === null || isStr(v.error)) && (v.startedAt === null || isNum(v.startedAt)) &&
  (v.report === null || checkPreflightReport(v.report).ok);

/** The compact live summary shown in the training view and the status bar. */
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

/** Host → training view. */
export type HostToPanel =
  | { type: 'init'; schema: SettingSpec[]; values: SettingValues; trusted: boolean; summary: LiveSummary | null; preflight: PreflightState }
  | { type: 'summary'; summary: LiveSummary | null }
  | { type: 'preflight'; preflight: PreflightState }
  | { type: 'values'; values: SettingValues };

export function isHostToPanel(v: unknown): v is HostToPanel {
  if (!isObject(v)) return false;
  switch (v.type) {
    case 'init': return isSettingsSchema(v.schema) && isSettingValues(v.values) && typeof v.trusted === 'boolean' && (v.summary === null || isLiveSummary(v.summary)) && isPreflightState(v.preflight);
    case 'preflight': return isPreflightState(v.preflight);
    case 'summary': return v.summary === null || isLiveSummary(v.summary);
    case 'values': return isSettingValues(v.values);
    default: return false;
  }
}

/** Training view → host. */
export type PanelToHost =
  | { type: 'ready' }
  | { type: 'valuesChanged'; values: SettingValues }
  | { type: 'start'; values: SettingValues }
  | { type: 'preflight'; values: SettingValues }
  | { type: 'cancelPreflight' }
  | { type: 'control'; action: 'pause' | 'resume' | 'stop' }
  | { type: 'resetDefaults' }
  | { type: 'openDashboard' };

export function isPanelToHost(v: unknown): v is PanelToHost {
  if (!isObject(v)) return false;
  switch (v.type) {
    case 'ready': case 'resetDefaults': case 'openDashboard': case 'cancelPreflight': return true;
    case 'valuesChanged': case 'start': case 'preflight': return isSettingValues(v.values);
    case 'control': return oneOf('pause', 'resume', 'stop')(v.action);
    default: return false;
  }
}
