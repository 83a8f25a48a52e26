/**
 * The dashboard's colours: VS Code's CSS variables (re-read by the page when the theme changes), and
 * applying them to a chart.js chart. Shared by the metric charts (./main.ts) and the signal card (./signal.ts).
 */
import { Chart } from 'chart.js';
import type { Point } from './data';

const PALETTE_VARS = ['--vscode-charts-blue', '--vscode-charts-orange', '--vscode-charts-green', '--vscode-charts-purple', '--vscode-charts-red', '--vscode-charts-yellow'];
const FALLBACK = ['#3794ff', '#d18616', '#89d185', '#b180d7', '#f14c4c', '#cca700'];

export interface Theme { palette: string[]; fg: string; grid: string; font: string }

/** What every dashboard chart sets alike: drawn at once from pre-parsed, sorted points, sized by its box. */
export const LINE_CHART_BASE = {
  animation: false,
  parsing: false,
  normalized: true,
  responsive: true,
  maintainAspectRatio: false,
  spanGaps: true,
} as const;

function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
}

export function readTheme(): Theme {
  return {
    palette: PALETTE_VARS.map((v, i) => cssVar(v, FALLBACK[i])),
    fg: cssVar('--vscode-foreground', '#ccc'),
    grid: cssVar('--vscode-editorWidget-border', 'rgba(128,128,128,0.25)'),
    font: cssVar('--vscode-font-family', 'sans-serif'),
  };
}

export function alpha(color: string, a: number): string {
  const m = /^#([0-9a-f]{6})$/i.exec(color);
  if (m) {
    const n = parseInt(m[1], 16);
    return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
  }
  return color.startsWith('rgb(') ? color.replace('rgb(', 'rgba(').replace(')', `, ${a})`) : color;
}

export function applyTheme(chart: Chart<'line', Point[]>, theme: Theme): void {
  const o = chart.options;
  Chart.defaults.font.family = theme.font;
  Chart.defaults.color = theme.fg;
  for (const axis of ['x', 'y'] as const) {
    const s = o.scales?.[axis];
    if (s) {
      s.grid = { ...s.grid, color: alpha(theme.grid, 0.35) };
      s.ticks = { ...s.ticks, color: theme.fg };
      if ('title' in s && s.title) s.title.color = theme.fg;
    }
  }
  if (o.plugins?.legend?.labels) o.plugins.legend.labels.color = theme.fg;
}
