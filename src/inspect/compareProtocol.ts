/**
 * The compare view's messages, host (./panels.ts) ↔ page (webview/compare/main.ts), and their guards;
 * each side validates what it receives. No `vscode`, no Node modules: the page's bundle imports this.
 */
import { isObject, isStr, isWebviewLog, type WebviewLog } from '../shared/guards';
import { checkCompareResult, type CompareResult } from '../shared/records';

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
  | WebviewLog;

export function isCompareToHost(v: unknown): v is CompareToHost {
  if (!isObject(v)) return false;
  switch (v.type) {
    case 'ready': return true;
    case 'log': return isWebviewLog(v);
    default: return false;
  }
}
