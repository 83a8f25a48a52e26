/**
 * The group inspector's messages, host (./panels.ts) ↔ page (webview/inspector/main.ts), and their
 * guards; each side validates what it receives. No `vscode`, no Node modules: the page's bundle imports this.
 */
import { isNum, isNumOrNull, isObject, isStr, isStrOrNull, isWebviewLog, type WebviewLog } from '../shared/guards';
import { isGroupKind, type GroupKind } from '../shared/groupKind';
import { checkGroupRecord, type GroupRecord } from '../shared/records';
import { isQuantity, type Quantity } from '../shared/values';

/** Where a group came from, for titles and follow-up requests. */
export interface GroupOrigin {
  runDir: string;
  checkpoint: string | null; // null: the live trainer's current policy, or a logged training group
  step: number | null;
  logged: boolean; // from samples.jsonl (training), not sampled on request
}
const isGroupOrigin = (v: unknown): v is GroupOrigin =>
  isObject(v) && isStr(v.runDir) && isStrOrNull(v.checkpoint) && isNumOrNull(v.step) && typeof v.logged === 'boolean';

/** A group the run logged (samples.jsonl), as the inspector's group list shows it: null kind = its line
 * names no rewards (unreadable), shown as unknown. */
export interface LoggedEntry { step: number; kind: GroupKind | null }
const isLoggedEntry = (v: unknown): v is LoggedEntry => isObject(v) && isNum(v.step) && (v.kind === null || isGroupKind(v.kind));

/** `follow`: whether the inspector shows each group the run logs as it logs it — null when it cannot (the
 * group is not a logged group of the run live in this window). */
export type HostToInspector =
  | { type: 'group'; group: GroupRecord; origin: GroupOrigin; title: string; focus: number | null; quantity: Quantity | null; follow: boolean | null }
  | { type: 'error'; message: string }
  /** the groups logged by the shown group's run, oldest first (sent when the shown run or its log changes) */
  | { type: 'logged'; runDir: string; groups: LoggedEntry[] };

export function isHostToInspector(v: unknown): v is HostToInspector {
  if (!isObject(v)) return false;
  switch (v.type) {
    case 'group':
      return checkGroupRecord(v.group).ok && isGroupOrigin(v.origin) && isStr(v.title) && isNumOrNull(v.focus) && (v.quantity === null || isQuantity(v.quantity)) &&
        (v.follow === null || typeof v.follow === 'boolean');
    case 'error': return isStr(v.message);
    case 'logged': return isStr(v.runDir) && Array.isArray(v.groups) && v.groups.every(isLoggedEntry);
    default: return false;
  }
}

export type InspectorToHost =
  | { type: 'ready' }
  | { type: 'openCompletion'; index: number }
  | { type: 'follow'; on: boolean }
  /** show the group the run logged at `step` (from the group list) */
  | { type: 'openLogged'; step: number }
  /** replay the shown logged group's step under other objectives (the What-if panel) */
  | { type: 'whatIf' }
  /** "Save as reward test" on completion `index` (the host asks for the reward it should get) */
  | { type: 'saveRewardTest'; index: number }
  | WebviewLog;

export function isInspectorToHost(v: unknown): v is InspectorToHost {
  if (!isObject(v)) return false;
  switch (v.type) {
    case 'ready': return true;
    case 'openCompletion': return isNum(v.index) && Number.isInteger(v.index) && v.index >= 0;
    case 'follow': return typeof v.on === 'boolean';
    case 'openLogged': return isNum(v.step) && Number.isInteger(v.step) && v.step >= 0;
    case 'whatIf': return true;
    case 'saveRewardTest': return isNum(v.index) && Number.isInteger(v.index) && v.index >= 0;
    case 'log': return isWebviewLog(v);
    default: return false;
  }
}
