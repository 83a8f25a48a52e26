/**
 * Small runtime guards every boundary's checks are built from, and the result type that says what was
 * wrong. No `vscode`, no Node modules: the host and the webview bundles both import this.
 */

export type Obj = Record<string, unknown>;

export function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
export const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
export const isStr = (v: unknown): v is string => typeof v === 'string';
export const isNumOrNull = (v: unknown): v is number | null => v === null || isNum(v);
export const isStrOrNull = (v: unknown): v is string | null => v === null || isStr(v);
export const oneOf = <T extends string>(...xs: readonly T[]) => (v: unknown): v is T => isStr(v) && (xs as readonly string[]).includes(v);
export const arrayOf = <T>(g: (v: unknown) => v is T) => (v: unknown): v is T[] => Array.isArray(v) && v.every(g);

/** A validation result that says what was wrong, for logs and error messages. */
export type Checked<T> = { ok: true; value: T } | { ok: false; error: string };

/** A webview's line for the host's log (every webview may send one). */
export interface WebviewLog { type: 'log'; level: 'info' | 'error'; message: string }
export const isWebviewLog = (v: Obj): boolean => v.type === 'log' && oneOf('info', 'error')(v.level) && isStr(v.message);
