/**
 * Reward components as the dashboard shows them: the names in a run's metrics (`rewards/<name>/mean`, TRL's
 * metric names) and the divergence flag, the sign of reward hacking when one component climbs while
 * another falls.
 *
 * `divergence` is a port of the trainer's `grpo.components.divergence` (trainer/grpo/components.py, whose
 * docstring states the rule): per component, the least-squares slope of its last `window` logged values
 * against their position, divided by its standard error (t); it rises at t > `tMin`, falls at t < −`tMin`
 * (at least `minPoints` numbers); one rising while another falls is a divergence. Ported rather than
 * emitted by the trainer because the dashboard also shows runs the trainer did not write as it runs now
 * (past runs, TRL runs through the bridge, runs overlaid for comparison): the flag is a function of the
 * metrics rows the page already has. test/unit/components.test.ts runs the same series through both and
 * compares. No `vscode`, no Node modules: the dashboard's page imports this.
 */

export const PREFIX = 'rewards/';
const SUFFIX = '/mean';

export interface Trend { slope: number; t: number; n: number }
export interface Divergence { diverging: boolean; rising: string[]; falling: string[]; trends: Record<string, Trend> }

const finite = (v: number | null | undefined): v is number => typeof v === 'number' && Number.isFinite(v);

/** The least-squares slope of `values` against their position and its t statistic (null: under 3 numbers). */
export function trend(values: readonly (number | null | undefined)[]): Trend | null {
  const pts: [number, number][] = [];
  values.forEach((v, i) => finite(v) && pts.push([i, v]));
  const n = pts.length;
  if (n < 3) return null;
  let mx = 0, my = 0;
  for (const [x, y] of pts) (mx += x), (my += y);
  mx /= n;
  my /= n;
  let sxx = 0, sxy = 0;
  for (const [x, y] of pts) (sxx += (x - mx) ** 2), (sxy += (x - mx) * (y - my));
  const b = sxy / sxx;
  const a = my - b * mx;
  let ssr = 0;
  for (const [x, y] of pts) ssr += (y - a - b * x) ** 2;
  const se = Math.sqrt(ssr / (n - 2) / sxx);
  const scale = Math.max(1, ...pts.map(([, y]) => Math.abs(y)));
  let t: number;
  if (se <= 1e-12 * scale) t = Math.abs(b) <= 1e-12 * scale ? 0 : Math.sign(b) * Infinity; // an exact line: certain
  else t = b / se;
  return { slope: b, t, n };
}

/** Whether one component rises while another falls over the last `window` values of each. */
export function divergence(series: Record<string, readonly (number | null | undefined)[]>, window = 20, tMin = 3, minPoints = 5): Divergence {
  if (window < 3) throw new RangeError(`window must be at least 3 logged steps; got ${window}`);
  const out: Divergence = { diverging: false, rising: [], falling: [], trends: {} };
  for (const [name, values] of Object.entries(series)) {
    const tr = trend(values.slice(-window));
    if (!tr || tr.n < minPoints) continue;
    out.trends[name] = tr;
    if (tr.t > tMin) out.rising.push(name);
    else if (tr.t < -tMin) out.falling.push(name);
  }
  out.diverging = out.rising.length > 0 && out.falling.length > 0;
  return out;
}

/** The component names among metrics keys (`rewards/<name>/mean`), in first-seen order. */
export function componentNames(keys: Iterable<string>): string[] {
  const out: string[] = [];
  for (const k of keys) {
    if (k.startsWith(PREFIX) && k.endsWith(SUFFIX) && k.length > PREFIX.length + SUFFIX.length) {
      const name = k.slice(PREFIX.length, -SUFFIX.length);
      if (!out.includes(name)) out.push(name);
    }
  }
  return out;
}

export const componentKey = (name: string): string => `${PREFIX}${name}${SUFFIX}`;

const signed = (t: number): string => (t === Infinity ? '+∞' : t === -Infinity ? '−∞' : `${t >= 0 ? '+' : '−'}${Math.abs(t).toFixed(1)}`);

/** The warning's words: "format ↑ while accuracy ↓ over the last 20 steps (t = +5.1 / −4.2)"; null when the
 * components do not diverge. `steps`: how many logged steps the window covered. */
export function describeDivergence(d: Divergence, steps: number): string | null {
  if (!d.diverging) return null;
  const ts = [...d.rising, ...d.falling].map((n) => signed(d.trends[n].t));
  return `${d.rising.join(', ')} ↑ while ${d.falling.join(', ')} ↓ over the last ${steps} logged steps (t = ${ts.join(' / ')})`;
}
