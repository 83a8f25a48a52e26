/**
 * The dashboard's messages, host (./dashboard.ts) ↔ page (webview/dashboard/main.ts), and their guards;
 * each side validates what it receives. No `vscode`, no Node modules: the page's bundle imports this.
 */
import { arrayOf, isNum, isObject, isStr, isWebviewLog, type WebviewLog } from '../shared/guards';
import { checkStatus, type RunStatus } from '../shared/records';
import { isMetricsColumns, type MetricsColumns } from './columns';

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
  | WebviewLog;

export function isDashboardToHost(v: unknown): v is DashboardToHost {
  if (!isObject(v)) return false;
  switch (v.type) {
    case 'ready': return v.state === null || isDashboardState(v.state);
    case 'removeRun': return isStr(v.runId);
    case 'addRun': return true;
    case 'log': return isWebviewLog(v);
    default: return false;
  }
}
