/**
 * The dashboard's data as the host sends it: a run's metrics rows as columns. No `vscode`, no Node
 * modules: the dashboard's page (webview/dashboard/data.ts) reads the same type.
 */
import { isObject } from '../shared/guards';
import type { MetricsRow } from '../shared/records';

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
