/**
 * The dashboard's "Where the signal went" card: one chart of stacked areas over steps, a band per signal
 * ledger category as a share of the step's sampled completion tokens, and beside it the breakdown of one
 * step (hover a step to see it, click to keep it; by default the latest): its token categories with counts
 * and shares (the chart's legend, in words), its groups by kind, and the gradient's shares by group kind and
 * by position in the completion; above both, the step in one sentence. Data handling is in ./ledger.ts.
 * Drawing is CSP-safe: chart.js on a canvas, elements built with the DOM, colours set through the CSSOM.
 */
import { Chart, type ChartDataset, type Plugin } from 'chart.js';
import { formatNumber } from '../../src/shared/format';
import { button, el, type ButtonHandle } from '../components';
import type { Point, RunSeries } from './data';
import { breakdownAt, formatCount, formatShare, lastLedgerRow, LedgerStack, nearestLedgerRow, STACK_ORDER, summarize, UNKNOWN_CATEGORY, LEDGER_CATEGORIES, type LedgerBreakdown, type LedgerCategory, type Part, type Tone } from './ledger';
import { alpha, applyTheme, LINE_CHART_BASE, type Theme } from './theme';

export interface SignalRun { id: string; name: string; series: RunSeries; several: boolean }

const TONE_INDEX: Record<Exclude<Tone, 'grey'>, number> = { blue: 0, orange: 1, green: 2, purple: 3, red: 4, yellow: 5 };

const pct = (share: number | null) => (share === null ? 'unknown' : share > 0 && share < 0.001 ? `${formatNumber(share * 100, 3)}%` : formatShare(share));
const num = (v: number | null) => (v === null ? 'unknown' : formatCount(v));
/** The gradient bars' colours: each kind of group as its tokens' band. */
const BAR_TONE: Record<string, string> = {
  'grad_share/mixed': 'ledger/effective', 'grad_share/all_correct': 'ledger/no_signal_correct', 'grad_share/all_wrong': 'ledger/no_signal_wrong', 'grad_share/no_signal_other': 'ledger/no_signal_other',
};

export class SignalCard {
  readonly card: HTMLElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly chart: Chart<'line', Point[]>;
  private readonly title = el('h3', {}, 'Where the signal went');
  private readonly runNote = el('span', { class: 'signal-run' });
  private readonly summary = el('p', { class: 'signal-summary', id: 'signal-summary' });
  private readonly breakdown = el('div', { class: 'signal-breakdown', id: 'signal-breakdown' });
  private readonly body: HTMLElement;
  private readonly note = el('p', { class: 'signal-note', id: 'signal-note' },
    'No signal ledger in the runs shown: the trainer records it for every step (where each sampled token went: masked, in a group without signal, clipped, or carrying policy gradient); runs from before it, and runs imported without it, show none.');
  private stack = new LedgerStack();
  private stackRun = '';
  private run: SignalRun | null = null;
  /** the steps under the pointer and clicked; the breakdown shows the first of hovered, pinned, latest */
  private hovered: number | null = null;
  private pinned: number | null = null;
  private shownKey = '';
  private readonly latestButton: ButtonHandle;

  constructor(private readonly theme: () => Theme, private readonly requestRedraw: () => void) {
    this.canvas = el('canvas', { 'aria-label': 'Where the signal went: shares of the sampled tokens by category, over steps', role: 'img' });
    this.latestButton = button('Latest step', () => this.pin(null), { secondary: true, id: 'signal-latest', title: 'Show the latest step again (the breakdown follows new steps)' });
    this.body = el('div', { class: 'signal-body' }, el('div', { class: 'canvas-box signal-canvas' }, this.canvas), this.breakdown);
    this.card = el('section', { class: 'card signal-card', 'data-chart': 'signal' },
      el('div', { class: 'signal-head' }, this.title, this.runNote),
      this.summary, this.body, this.note);
    this.chart = this.makeChart();
    this.canvas.addEventListener('mouseleave', () => this.hover(null));
  }

  private makeChart(): Chart<'line', Point[]> {
    const marker: Plugin<'line'> = {
      id: 'signalStep',
      afterDatasetsDraw: (c) => {
        const step = this.shownStep();
        const a = c.chartArea;
        if (step === null || !a) return;
        const x = c.scales.x.getPixelForValue(step);
        if (x < a.left || x > a.right) return;
        const ctx = c.ctx;
        ctx.save();
        ctx.strokeStyle = this.theme().fg;
        ctx.lineWidth = 1;
        ctx.setLineDash(this.pinned !== null && this.hovered === null ? [] : [3, 3]);
        ctx.beginPath();
        ctx.moveTo(x, a.top);
        ctx.lineTo(x, a.bottom);
        ctx.stroke();
        ctx.restore();
      },
    };
    const chart = new Chart<'line', Point[]>(this.canvas, {
      type: 'line',
      data: { datasets: [] },
      plugins: [marker],
      options: {
        ...LINE_CHART_BASE,
        elements: { point: { radius: 0, hitRadius: 0 }, line: { borderWidth: 0, tension: 0 } },
        scales: {
          x: { type: 'linear', title: { display: true, text: 'step' }, ticks: { maxTicksLimit: 8 } },
          y: { type: 'linear', min: 0, max: 1, ticks: { maxTicksLimit: 5, callback: (v) => `${formatNumber(Number(v) * 100, 0)}%` }, title: { display: true, text: 'share of sampled tokens' } },
        },
        plugins: { legend: { display: false }, tooltip: { enabled: false } },
        onHover: (e, _els, c) => this.hover(e.x === null ? null : c.scales.x.getValueForPixel(e.x) ?? null),
        onClick: (e, _els, c) => {
          const x = e.x === null ? undefined : c.scales.x.getValueForPixel(e.x);
          if (x === undefined || !this.run) return;
          const i = nearestLedgerRow(this.run.series, x);
          const step = i < 0 ? null : this.run.series.step[i];
          this.pin(step === this.pinned ? null : step);
        },
      },
    });
    applyTheme(chart, this.theme());
    return chart;
  }

  applyTheme(): void {
    applyTheme(this.chart, this.theme());
    this.shownKey = ''; // swatches take the new colours
  }

  private color(c: LedgerCategory, a = c.alpha): string {
    const t = this.theme();
    return alpha(c.tone === 'grey' ? t.fg : t.palette[TONE_INDEX[c.tone] % t.palette.length], a);
  }

  private hover(x: number | null): void {
    let step: number | null = null;
    if (x !== null && this.run) {
      const i = nearestLedgerRow(this.run.series, x);
      step = i < 0 ? null : this.run.series.step[i];
    }
    if (step === this.hovered) return;
    this.hovered = step;
    this.renderBreakdown();
    this.chart.draw(); // the step marker
  }

  /** Keeps the breakdown on `step` (null: follow the latest step again). */
  pin(step: number | null): void {
    this.pinned = step;
    this.renderBreakdown();
    this.chart.draw();
  }

  private shownStep(): number | null {
    return this.hovered ?? this.pinned ?? this.latestStep();
  }

  private latestStep(): number | null {
    if (!this.run) return null;
    const i = lastLedgerRow(this.run.series);
    return i < 0 ? null : this.run.series.step[i];
  }

  /** Draws the run's ledger (null: no run shown has one); returns the points drawn. `last`: the shared
   * step axis's end. Called from the dashboard's batched redraw. */
  draw(run: SignalRun | null, last: number): number {
    this.run = run;
    this.note.hidden = run !== null;
    this.body.hidden = this.summary.hidden = run === null;
    this.runNote.textContent = run?.several ? `run ${run.name}` : '';
    if (!run) {
      this.card.dataset.points = '0';
      this.card.dataset.bands = '0';
      return 0;
    }
    if (this.stackRun !== run.id) {
      this.stack = new LedgerStack();
      this.stackRun = run.id;
      this.hovered = this.pinned = null;
    }
    const x = this.chart.options.scales?.x;
    if (x) Object.assign(x, { min: 0, max: last });
    // about one bucket per two pixels: an area needs fewer points than a line to look the same
    const buckets = Math.max(50, Math.round((this.chart.width || 600) / 2));
    const stacked = this.stack.update(run.series, buckets);
    const datasets: ChartDataset<'line', Point[]>[] = [];
    let points = 0;
    if (stacked) {
      STACK_ORDER.forEach((c, k) => {
        if (!stacked.present[k]) return;
        const data = stacked.bands[k];
        points += data.length;
        datasets.push({
          label: c.label, data, fill: datasets.length === 0 ? 'origin' : '-1', backgroundColor: this.color(c), borderColor: this.color(c, 1),
          borderWidth: c === UNKNOWN_CATEGORY ? 0 : 0.75, pointRadius: 0,
        });
      });
    }
    this.chart.data.datasets = datasets;
    this.chart.update('none');
    const a = this.chart.chartArea;
    this.card.dataset.points = String(points);
    this.card.dataset.bands = String(datasets.length);
    if (a) this.card.dataset.plot = [a.left, a.top, a.right, a.bottom].map(Math.round).join(',');
    this.card.dataset.colors = JSON.stringify(datasets.map((d) => d.borderColor));
    this.renderBreakdown();
    return points;
  }

  private renderBreakdown(): void {
    const run = this.run;
    const step = this.shownStep();
    const key = `${run?.id}\u0000${step}\u0000${run?.series.version}\u0000${this.pinned}\u0000${this.hovered}`;
    if (key === this.shownKey) return;
    this.shownKey = key;
    if (!run || step === null) {
      this.breakdown.replaceChildren(el('p', { class: 'signal-note' }, 'No step with a signal ledger yet.'));
      this.summary.textContent = '';
      this.card.dataset.step = '';
      return;
    }
    const latest = run.series.step[lastLedgerRow(run.series)];
    this.summary.textContent = `Latest: ${summarize(breakdownAt(run.series, lastLedgerRow(run.series)))}`;
    const b = breakdownAt(run.series, nearestLedgerRow(run.series, step));
    this.card.dataset.step = String(b.step);
    this.card.dataset.pinned = this.pinned === null ? '' : String(this.pinned);
    const how = this.hovered !== null ? 'under the pointer (click to keep it)' : this.pinned !== null ? 'selected' : b.step === latest ? 'the latest (hover or click the chart for another)' : '';
    this.latestButton.element.hidden = this.pinned === null;
    this.breakdown.replaceChildren(
      el('div', { class: 'bd-head' }, el('strong', { id: 'signal-step' }, `Step ${b.step}`), el('span', { class: 'bd-how' }, how), this.latestButton.element),
      this.tokenTable(b),
      this.groupTable(b),
      this.bars('Gradient by group kind', 'share of the step\'s gradient on token log-probs, Σ|∂L/∂log π|, from each kind of group (equal-reward groups give only the KL term)', b.gradByKind, 'grad-kind'),
      this.bars('Gradient by position in the completion', 'share of Σ|∂L/∂log π| from tokens in each quarter of their completion', b.gradByLength, 'grad-length'),
    );
  }

  private tokenTable(b: LedgerBreakdown): HTMLElement {
    // top to bottom as the bands are stacked: the not-recorded band on top, what carried signal at the bottom
    const parts: [LedgerCategory, Part][] = LEDGER_CATEGORIES.map((c, i) => [c, b.categories[i]]);
    if (b.unknown) parts.unshift([UNKNOWN_CATEGORY, b.unknown]);
    const rows = parts.map(([c, p]) => {
      const sw = el('span', { class: 'swatch' });
      sw.style.background = this.color(c, Math.max(c.alpha, 0.3));
      sw.style.borderColor = this.color(c, 1);
      const tr = el('tr', { 'data-key': p.key, title: c.title, class: p.value === null ? 'unknown' : p.value === 0 ? 'zero' : undefined },
        el('td', {}, sw, c.label), el('td', { class: 'num' }, num(p.value)), el('td', { class: 'num' }, pct(p.share)));
      return tr;
    });
    return el('table', { class: 'bd-table', id: 'signal-tokens' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Sampled tokens'), el('th', { class: 'num' }, 'tokens'), el('th', { class: 'num' }, 'share'))),
      el('tbody', {}, ...rows),
      el('tfoot', {}, el('tr', {}, el('td', {}, 'all sampled'), el('td', { class: 'num' }, num(b.tokens)), el('td', { class: 'num' }, b.tokens === null ? 'unknown' : '100%'))));
  }

  private groupTable(b: LedgerBreakdown): HTMLElement {
    const rows = b.groups.map((p) => el('tr', { 'data-key': p.key, class: p.value === null ? 'unknown' : undefined }, el('td', {}, p.label), el('td', { class: 'num' }, num(p.value)), el('td', { class: 'num' }, pct(p.share))));
    return el('table', { class: 'bd-table', id: 'signal-groups' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Groups'), el('th', { class: 'num' }, 'groups'), el('th', { class: 'num' }, 'share'))),
      el('tbody', {}, ...rows),
      el('tfoot', {}, el('tr', {}, el('td', {}, 'sampled'), el('td', { class: 'num' }, num(b.sampled)), el('td', {}, ''))));
  }

  private bars(title: string, explain: string, parts: Part[], id: string): HTMLElement {
    const rows = parts.map((p) => {
      const fill = el('span', { class: 'bar-fill' });
      fill.style.width = `${Math.max(0, Math.min(1, p.share ?? 0)) * 100}%`;
      const tone = LEDGER_CATEGORIES.find((c) => c.key === BAR_TONE[p.key]);
      if (tone) fill.style.background = this.color(tone, 1);
      return el('div', { class: `bar-row${p.share === null ? ' unknown' : ''}`, 'data-key': p.key },
        el('span', { class: 'bar-label' }, p.label), el('span', { class: 'bar' }, fill), el('span', { class: 'num' }, pct(p.share)));
    });
    return el('div', { class: 'bd-bars', id: `signal-${id}` }, el('div', { class: 'bd-title', title: explain }, title), ...rows);
  }
}
