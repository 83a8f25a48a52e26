/**
 * The token heatmap: rows of tokens, each a <span> whose background is the colour of its value's bucket
 * (set through the CSSOM, which the strict CSP allows), with one tooltip element for exact values on
 * hover (one delegated listener, nothing per token). Built in one pass into a DocumentFragment, so 64
 * completions × 512 tokens draw in one layout.
 */
import { bucketColour, bucketOf, LEVELS, type Scale, visibleToken } from '../src/inspect/values';
import type { Quantity } from '../src/protocol';

export interface HeatRow {
  /** Identifies the row to `tooltip` and in `data-heat-index`. */
  index: number;
  label: string;
  tokens: readonly string[];
  values: readonly number[];
  /** Token indices that end a reasoning step (process supervision): drawn with a boundary after them. */
  stepEnds?: readonly number[];
}

const colourCache = new Map<string, string>();
function colour(bucket: number, q: Quantity): string {
  const k = `${q}:${bucket}`;
  let c = colourCache.get(k);
  if (c === undefined) colourCache.set(k, (c = bucketColour(bucket, q)));
  return c;
}

/** Shown text of a token: whitespace visible; a newline also breaks the line (pre-wrap). */
function shown(t: string): string {
  return t === '\n' ? '↵\n' : visibleToken(t);
}

export interface Heatmap {
  element: HTMLElement;
  /** Re-draws every row (new rows, quantity or scale). Returns the time spent building, in ms. */
  draw(rows: readonly HeatRow[], q: Quantity, scale: Scale): number;
  highlight(index: number | null): void;
}

export function heatmap(tooltip: (row: number, token: number) => string, onRowClick?: (row: number) => void): Heatmap {
  const root = document.createElement('div');
  root.className = 'heatmap';
  const tip = document.createElement('div');
  tip.className = 'heat-tip';
  tip.hidden = true;
  tip.setAttribute('role', 'tooltip');
  document.body.append(tip);
  let rowEls: HTMLElement[] = [];

  root.addEventListener('mouseover', (e) => {
    const span = (e.target as HTMLElement).closest('span.tok') as HTMLElement | null;
    if (!span) return;
    const rowEl = span.closest('[data-heat-index]') as HTMLElement;
    const row = Number(rowEl.dataset.heatIndex);
    const tokenIdx = Number(span.dataset.t);
    tip.textContent = tooltip(row, tokenIdx);
    tip.hidden = false;
    const r = span.getBoundingClientRect();
    const top = r.bottom + 4 + tip.offsetHeight > window.innerHeight ? r.top - tip.offsetHeight - 4 : r.bottom + 4;
    tip.style.left = `${Math.max(4, Math.min(r.left, window.innerWidth - tip.offsetWidth - 8))}px`;
    tip.style.top = `${Math.max(4, top)}px`;
  });
  root.addEventListener('mouseleave', () => (tip.hidden = true));
  root.addEventListener('click', (e) => {
    const rowEl = (e.target as HTMLElement).closest('[data-heat-index]') as HTMLElement | null;
    if (rowEl && onRowClick) onRowClick(Number(rowEl.dataset.heatIndex));
  });

  return {
    element: root,
    draw(rows, q, scale) {
      const t0 = performance.now();
      const frag = document.createDocumentFragment();
      rowEls = [];
      for (const row of rows) {
        const line = document.createElement('div');
        line.className = 'heat-row';
        line.dataset.heatIndex = String(row.index);
        const label = document.createElement('span');
        label.className = 'heat-label';
        label.textContent = row.label;
        const body = document.createElement('span');
        body.className = 'heat-tokens';
        const ends = row.stepEnds ? new Set(row.stepEnds) : null;
        for (let i = 0; i < row.tokens.length; i++) {
          const s = document.createElement('span');
          s.className = ends?.has(i) ? 'tok step-end' : 'tok';
          s.dataset.t = String(i);
          s.textContent = shown(row.tokens[i]);
          const b = bucketOf(row.values[i], scale);
          if (b !== 0) s.style.backgroundColor = colour(b, q);
          body.append(s);
        }
        line.append(label, body);
        frag.append(line);
        rowEls.push(line);
      }
      root.replaceChildren(frag);
      return performance.now() - t0;
    },
    highlight(index) {
      for (const el of rowEls) el.classList.toggle('focused', index !== null && Number(el.dataset.heatIndex) === index);
      if (index !== null) rowEls.find((el) => Number(el.dataset.heatIndex) === index)?.scrollIntoView({ block: 'nearest' });
    },
  };
}

/** A legend strip for a scale: the buckets from most negative to most positive, with the end values. */
export function legend(q: Quantity, scale: Scale, label: string): HTMLElement {
  const box = document.createElement('div');
  box.className = 'legend';
  const name = document.createElement('span');
  name.className = 'legend-name';
  name.textContent = label;
  box.append(name);
  if (scale.span <= 1e-9) {
    const flat = document.createElement('span');
    flat.textContent = `every token ${q === 'ratio' ? '= 1' : '= 0'} (no colour)`;
    box.append(flat);
    return box;
  }
  const lo = scale.kind === 'diverging' ? -LEVELS : 0;
  const endValue = (sign: number) => {
    if (q === 'ratio') return (scale.center * Math.exp(sign * scale.span)).toPrecision(3);
    if (q === 'logp') return (-scale.span).toPrecision(3);
    return (scale.center + sign * scale.span).toPrecision(3);
  };
  const left = document.createElement('span');
  left.textContent = scale.kind === 'diverging' ? endValue(-1) : q === 'logp' ? '0' : String(scale.center);
  box.append(left);
  for (let b = lo; b <= LEVELS; b++) {
    const sw = document.createElement('span');
    sw.className = 'swatch';
    sw.style.backgroundColor = colour(b, q);
    box.append(sw);
  }
  const right = document.createElement('span');
  right.textContent = endValue(1);
  box.append(right);
  return box;
}
