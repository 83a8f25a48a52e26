/**
 * The dashboard webview: chart.js charts of one or more runs' metrics, updated as steps arrive.
 * Data handling (series, smoothing, decimation) lives in ./data.ts; this file is DOM and chart.js.
 */
import {
  CategoryScale,
  Chart,
  Filler,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
  type ChartDataset,
} from 'chart.js';
import { isDashboardState, isHostToDashboard, type DashboardState, type DashboardToHost, type HostToDashboard, type RunInfo } from '../../src/dashboard/dashboardProtocol';
import { formatNumber } from '../../src/shared/format';
import { button, el, registerComponents } from '../components';
import { describe, getState, listen, post, setState } from '../host';
import { chartSeries, CHARTS, divergenceWarning, DrawCache, RunSeries, yBounds, type ChartDef, type Point } from './data';
import { SignalCard } from './signal';
import { alpha, applyTheme as themeChart, LINE_CHART_BASE, readTheme } from './theme';

Chart.register(LineController, LineElement, PointElement, LinearScale, CategoryScale, Filler, Tooltip, Legend);
registerComponents();

const MIN_REDRAW_MS = 100; // at most ~10 redraws per second, however fast steps arrive
const send = (m: DashboardToHost) => post(m);

interface RunView { info: RunInfo; series: RunSeries; colorIndex: number }
const runs = new Map<string, RunView>();
const saved = getState();
const initial: DashboardState = isDashboardState(saved) ? saved : { runIds: [], smoothing: 0.6 };
let smoothing = initial.smoothing;
const cache = new DrawCache(smoothing);
const charts = new Map<string, Chart<'line', Point[]>>();
const cards = new Map<string, HTMLElement>();

// ---------------------------------------------------------------------------------------------------
// Theme colours: VS Code's CSS variables, re-read when the theme changes.

let theme = readTheme();
new MutationObserver(() => {
  theme = readTheme();
  for (const c of charts.values()) applyTheme(c);
  signal.applyTheme();
  scheduleRedraw();
}).observe(document.body, { attributes: true, attributeFilter: ['class'] });

// ---------------------------------------------------------------------------------------------------
// Layout

const app = document.getElementById('app') as HTMLElement;
const legend = el('div', { class: 'runs', id: 'runs' });
const smoothLabel = el('span', { class: 'smooth-value' }, smoothing.toFixed(2));
const slider = el('input', { type: 'range', min: '0', max: '0.99', step: '0.01', value: String(smoothing), id: 'smoothing', 'aria-label': 'Smoothing' });
slider.addEventListener('input', () => {
  smoothing = Number(slider.value);
  smoothLabel.textContent = smoothing.toFixed(2);
  cache.setWeight(smoothing);
  persist();
  scheduleRedraw();
});
const addRun = button('Add run…', () => send({ type: 'addRun' }), { secondary: true, id: 'add-run', title: 'Overlay another run to compare' });
const empty = el('div', { class: 'empty', id: 'empty' }, 'No run to show yet. Start training from the GRPO view, or open a past run with "GRPO: Open Run…".');
const grid = el('div', { class: 'grid', id: 'charts' });
app.append(
  el('header', {}, legend, el('div', { class: 'controls' }, el('label', { for: 'smoothing' }, 'Smoothing'), slider, smoothLabel, addRun.element)),
  empty,
  grid,
);

// "Where the signal went": the signal ledger's stacked shares and the selected step's breakdown (./signal.ts)
const signal = new SignalCard(() => theme, () => scheduleRedraw());
grid.append(signal.card);

// The reward components card's divergence flag: one line per run whose components diverge (./data.ts)
const divergenceBox = el('div', { class: 'divergence', id: 'divergence', role: 'alert' });
divergenceBox.hidden = true;

for (const def of CHARTS) {
  const canvas = el('canvas', { 'aria-label': def.title, role: 'img' });
  const card = el('section', { class: 'card', 'data-chart': def.id }, el('h3', {}, def.title), ...(def.components ? [divergenceBox] : []), el('div', { class: 'canvas-box' }, canvas));
  card.hidden = !!def.components; // shown once a run logged reward components
  grid.append(card);
  cards.set(def.id, card);
  charts.set(def.id, makeChart(canvas, def));
}

function makeChart(canvas: HTMLCanvasElement, def: ChartDef): Chart<'line', Point[]> {
  const chart = new Chart<'line', Point[]>(canvas, {
    type: 'line',
    data: { datasets: [] },
    options: {
      ...LINE_CHART_BASE,
      interaction: { mode: 'nearest', axis: 'x', intersect: false },
      elements: { point: { radius: 0, hitRadius: 4 }, line: { borderWidth: 1.5, tension: 0 } },
      scales: {
        x: { type: 'linear', title: { display: true, text: 'step' }, ticks: { maxTicksLimit: 6 } },
        y: { type: 'linear', ...yBounds(def), ticks: { maxTicksLimit: 5, callback: (v) => (def.percent ? `${formatNumber(Number(v) * 100, 1)}%` : formatNumber(Number(v))) } },
      },
      plugins: {
        legend: { display: def.series.length > 1 || !!def.components, labels: { boxWidth: 10, filter: (item) => !String(item.text).startsWith('\u200b') } },
        tooltip: {
          filter: (item) => !String(item.dataset.label).startsWith('\u200b'),
          callbacks: { label: (item) => `${item.dataset.label}: ${formatNumber(item.parsed.y, 4)}` },
        },
      },
    },
  });
  applyTheme(chart);
  return chart;
}

function applyTheme(chart: Chart<'line', Point[]>): void {
  themeChart(chart, theme);
}

// ---------------------------------------------------------------------------------------------------
// Drawing (batched: many updates between two frames cost one redraw)

let redrawTimer: ReturnType<typeof setTimeout> | null = null;
let lastDraw = 0;
let redraws = 0;

function scheduleRedraw(): void {
  if (redrawTimer !== null) return;
  const wait = Math.max(0, MIN_REDRAW_MS - (performance.now() - lastDraw));
  redrawTimer = setTimeout(() => requestAnimationFrame(draw), wait);
}

const HIDDEN = '\u200b'; // label prefix for helper datasets (band edges, raw lines): kept out of legends

function datasetsFor(def: ChartDef, buckets: number): ChartDataset<'line', Point[]>[] {
  const out: ChartDataset<'line', Point[]>[] = [];
  const multiRun = runs.size > 1;
  const series = chartSeries(def, [...runs.values()].map((r) => r.series));
  for (const [id, run] of runs) {
    series.forEach((s, j) => {
      // One run: each series its own colour. Several runs: the run's colour, series told apart by dashes.
      const color = theme.palette[(multiRun ? run.colorIndex : (s.color ?? j)) % theme.palette.length];
      if (!run.series.get(s.key)) return;
      const label = multiRun ? `${run.info.name} · ${s.label}` : s.label;
      const dash = (multiRun && j > 0) || (!multiRun && s.dashed) ? [5, 3] : [];
      const sparse = def.sparse || s.sparse;
      if (s.band) {
        const b = cache.band(id, run.series, s.key, s.band, buckets);
        if (b) {
          out.push({ label: HIDDEN + 'upper', data: b.upper, borderWidth: 0, pointRadius: 0, fill: false, backgroundColor: alpha(color, 0.15) });
          out.push({ label: HIDDEN + 'lower', data: b.lower, borderWidth: 0, pointRadius: 0, fill: '-1', backgroundColor: alpha(color, 0.15) });
        }
      }
      const smooth = smoothing > 0 && !sparse; // a handful of evaluations is not smoothed
      if (smooth) {
        out.push({ label: HIDDEN + label, data: cache.line(id, run.series, s.key, buckets, false), borderColor: alpha(color, 0.18), borderWidth: 1, borderDash: dash });
      }
      out.push({
        label, data: cache.line(id, run.series, s.key, buckets, smooth), borderColor: color, backgroundColor: color, borderDash: dash,
        borderWidth: smooth ? 2 : 1.5, pointRadius: sparse ? 2.5 : 0,
      });
    });
  }
  return out;
}

function draw(): void {
  redrawTimer = null;
  const t0 = performance.now();
  let points = 0;
  // one step axis for every chart, from 0 (the start's evaluation) to the furthest run's last step: charts
  // line up, and a chart with only the step-0 evaluation yet is not drawn on a -1…1 axis
  let last = 1;
  for (const r of runs.values()) last = Math.max(last, r.series.step[r.series.step.length - 1] ?? 0);
  for (const def of CHARTS) {
    const chart = charts.get(def.id);
    if (!chart) continue;
    const x = chart.options.scales?.x;
    if (x) Object.assign(x, { min: 0, max: last });
    const buckets = Math.max(50, Math.round(chart.width || 400));
    chart.data.datasets = datasetsFor(def, buckets);
    let drawn = 0;
    for (const d of chart.data.datasets) drawn += d.data.length;
    points += drawn;
    chart.update('none');
    // what each chart drew, for the end-to-end test: its points, the plot area (CSS pixels) and the colours
    // of its series (the helper datasets — bands, raw lines — are left out)
    const card = cards.get(def.id)!;
    const a = chart.chartArea;
    card.dataset.points = String(drawn);
    if (a) card.dataset.plot = [a.left, a.top, a.right, a.bottom].map(Math.round).join(',');
    card.dataset.colors = JSON.stringify(chart.data.datasets.filter((d) => !String(d.label).startsWith(HIDDEN)).map((d) => d.borderColor));
    if (def.components) drawComponents(card);
  }
  const withLedger = [...runs.values()].find((r) => r.series.get('ledger/tokens'));
  points += signal.draw(withLedger ? { id: withLedger.info.id, name: withLedger.info.name, series: withLedger.series, several: runs.size > 1 } : null, last);
  for (const r of runs.values()) r.series.markClean();
  lastDraw = performance.now();
  redraws++;
  const ms = lastDraw - t0;
  // Observable by the end-to-end test and the benchmark.
  const first = runs.values().next().value as RunView | undefined;
  document.body.dataset.steps = String(first?.series.length ?? 0);
  document.body.dataset.points = String(points);
  document.body.dataset.redraws = String(redraws);
  window.dispatchEvent(new CustomEvent('grpo-drawn', { detail: { ms, points } }));
}

/** The reward components card: shown when a run logged components; its divergence flag per run. */
function drawComponents(card: HTMLElement): void {
  const names = chartSeries(CHARTS.find((d) => d.components)!, [...runs.values()].map((r) => r.series)).map((s) => s.label);
  const wasHidden = card.hidden;
  card.hidden = names.length === 0;
  if (wasHidden && !card.hidden) scheduleRedraw(); // laid out only now: its chart's size and plot area
  card.dataset.components = JSON.stringify(names);
  const lines = [...runs.values()].flatMap((r) => {
    const w = divergenceWarning(r.series);
    return w ? [runs.size > 1 ? `${r.info.name}: ${w}` : w] : [];
  });
  divergenceBox.replaceChildren(...lines.map((l) => el('div', {}, `⚠ ${l}`)));
  divergenceBox.title = 'Possible reward hacking: over the window, each component’s least-squares slope divided by its standard error (t); |t| > 3 is a trend, one rising while another falls is a divergence (docs/trainer.md)';
  divergenceBox.hidden = lines.length === 0;
  card.dataset.diverging = String(lines.length > 0);
}

// ---------------------------------------------------------------------------------------------------
// Runs

function renderLegend(): void {
  legend.replaceChildren(
    ...[...runs.values()].map((r) => {
      const color = theme.palette[r.colorIndex % theme.palette.length];
      const st = r.info.status;
      const state = st ? `${r.info.live ? st.state : st.state === 'running' || st.state === 'paused' ? 'not live' : st.state} · step ${st.step}` : '';
      const remove = el('button', { class: 'remove', title: `Remove ${r.info.name} from the dashboard`, 'aria-label': `Remove ${r.info.name}` }, '×');
      remove.addEventListener('click', () => send({ type: 'removeRun', runId: r.info.id }));
      const swatch = el('span', { class: 'swatch' });
      swatch.style.background = color;
      return el('span', { class: 'run-chip', 'data-run': r.info.name }, swatch, el('span', { class: 'run-name' }, r.info.name), el('span', { class: 'run-state' }, state), remove);
    }),
  );
  empty.hidden = runs.size > 0;
  grid.hidden = runs.size === 0;
}

function persist(): void {
  setState({ runIds: [...runs.keys()], smoothing } satisfies DashboardState);
}

function nextColor(): number {
  const used = new Set([...runs.values()].map((r) => r.colorIndex));
  let i = 0;
  while (used.has(i)) i++;
  return i;
}

function ensureRun(info: RunInfo): RunView {
  let r = runs.get(info.id);
  if (!r) {
    r = { info, series: new RunSeries(), colorIndex: nextColor() };
    runs.set(info.id, r);
  } else r.info = info;
  return r;
}

function handle(m: HostToDashboard): void {
  switch (m.type) {
    case 'reset':
      runs.clear();
      for (const info of m.runs) ensureRun(info);
      break;
    case 'runData': {
      const r = ensureRun(m.run);
      r.series.append(m.columns, m.replace);
      if (m.replace) cache.drop(m.run.id);
      break;
    }
    case 'runStatus': {
      const r = runs.get(m.runId);
      if (r) r.info = { ...r.info, status: m.status, live: m.live };
      break;
    }
    case 'removeRun':
      runs.delete(m.runId);
      cache.drop(m.runId);
      break;
  }
  renderLegend();
  persist();
  scheduleRedraw();
}

listen(isHostToDashboard, handle, (v) => send({ type: 'log', level: 'error', message: `dashboard: dropped an invalid message ${describe(v)}` }));
renderLegend();
send({ type: 'ready', state: isDashboardState(saved) ? saved : null });
