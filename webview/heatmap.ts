/**
 * The token heatmap: rows of tokens, each token a <span> whose class names its colour bucket. The
 * bucket colours come from the same function the editor shading uses (bucketColour), installed once as
 * CSS rules through the CSSOM (the strict CSP forbids inline style attributes, not CSSOM writes). A row
 * is built as one HTML string (text escaped; no attributes from data), so 64 completions × 512 tokens
 * parse in one pass; rows off screen skip layout and paint (`content-visibility: auto`). One delegated
 * listener and one tooltip element give exact values on hover.
 */
import { bucketColour, bucketOf, LEVELS, QUANTITIES, type Quantity, type Scale, visibleToken } from '../src/shared/values';

export interface HeatRow {
  /** Identifies the row to `tooltip` and in `data-heat-index`. */
  index: number;
  label: string;
  tokens: readonly string[];
  values: readonly number[];
  /** Token indices that end a reasoning step (process supervision): drawn with a boundary after them. */
  stepEnds?: readonly number[];
}

/** Class of a bucket: n8…n1 (below the centre), p1…p8 (above, or magnitude for sequential scales). */
const bucketClass = (b: number) => (b < 0 ? `n${-b}` : `p${b}`);

let rulesInstalled = false;
/** `.q-<quantity> .p3 { background-color: … }` for every quantity and bucket, from bucketColour (once a page). */
export function installRules(): void {
  if (rulesInstalled) return;
  rulesInstalled = true;
  const sheet = [...document.styleSheets].find((s) => { try { return !!s.cssRules; } catch { return false; } });
  if (!sheet) return;
  for (const q of QUANTITIES) {
    for (let b = -LEVELS; b <= LEVELS; b++) {
      if (b !== 0) sheet.insertRule(`.q-${q} .${bucketClass(b)} { background-color: ${bucketColour(b, q)}; }`, sheet.cssRules.length);
    }
  }
}

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' };
export const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => ESC[c]);
/** Shown text of a token: whitespace visible; a newline also breaks the line (pre-wrap). */
const shown = (t: string) => escapeHtml(t === '\n' ? '↵\n' : visibleToken(t));

export interface Heatmap {
  element: HTMLElement;
  /** Re-draws every row (new rows, quantity or scale). Returns the time spent building, in ms. */
  draw(rows: readonly HeatRow[], q: Quantity, scale: Scale): number;
  highlight(index: number | null): void;
}

/**
 * The token spans of one completion (`<span class="t p3">…</span>` per token, text escaped, a step boundary
 * marked after each index in `stepEnds`), as one HTML string: a row of the heatmap, or a cell of another view.
 */
export function tokensHtml(tokens: readonly string[], values: readonly number[], scale: Scale, stepEnds?: readonly number[]): string {
  const parts: string[] = [];
  let nextEnd = 0;
  for (let i = 0; i < tokens.length; i++) {
    const b = bucketOf(values[i], scale);
    let cls = b === 0 ? 't' : `t ${bucketClass(b)}`;
    if (stepEnds && nextEnd < stepEnds.length && stepEnds[nextEnd] === i) {
      cls += ' se';
      while (nextEnd < stepEnds.length && stepEnds[nextEnd] <= i) nextEnd++;
    }
    parts.push(`<span class="${cls}">${shown(tokens[i])}</span>`);
  }
  return parts.join('');
}

/**
 * One tooltip for every token span (`.t`) under `root` (one delegated listener): `text(span, tokenIndex)`
 * says what it shows, the token's index being its place among its siblings.
 */
export function tokenTooltips(root: HTMLElement, text: (span: HTMLElement, token: number) => string): void {
  const tip = document.createElement('div');
  tip.className = 'heat-tip';
  tip.hidden = true;
  tip.setAttribute('role', 'tooltip');
  document.body.append(tip);
  root.addEventListener('mouseover', (e) => {
    const span = e.target as HTMLElement;
    if (!span.classList.contains('t')) return;
    const tokenIdx = Array.prototype.indexOf.call(span.parentElement!.children, span) as number;
    tip.textContent = text(span, tokenIdx);
    tip.hidden = !tip.textContent;
    const r = span.getBoundingClientRect();
    const top = r.bottom + 4 + tip.offsetHeight > window.innerHeight ? r.top - tip.offsetHeight - 4 : r.bottom + 4;
    tip.style.left = `${Math.max(4, Math.min(r.left, window.innerWidth - tip.offsetWidth - 8))}px`;
    tip.style.top = `${Math.max(4, top)}px`;
  });
  root.addEventListener('mouseleave', () => (tip.hidden = true));
}

export function heatmap(tooltip: (row: number, token: number) => string, onRowClick?: (row: number) => void): Heatmap {
  installRules();
  const root = document.createElement('div');
  root.className = 'heatmap';
  tokenTooltips(root, (span, token) => tooltip(Number((span.closest('[data-heat-index]') as HTMLElement).dataset.heatIndex), token));
  root.addEventListener('click', (e) => {
    const rowEl = (e.target as HTMLElement).closest('[data-heat-index]') as HTMLElement | null;
    if (rowEl && onRowClick) onRowClick(Number(rowEl.dataset.heatIndex));
  });

  return {
    element: root,
    draw(rows, q, scale) {
      const t0 = performance.now();
      const parts: string[] = [];
      for (const row of rows) {
        parts.push(`<div class="heat-row" data-heat-index="${row.index | 0}"><span class="heat-label">${escapeHtml(row.label)}</span><span class="heat-tokens">`,
          tokensHtml(row.tokens, row.values, scale, row.stepEnds), '</span></div>');
      }
      root.className = `heatmap q-${q}`;
      root.innerHTML = parts.join('');
      return performance.now() - t0;
    },
    highlight(index) {
      for (const el of root.querySelectorAll<HTMLElement>('.heat-row.focused')) el.classList.remove('focused');
      if (index === null) return;
      const el = root.querySelector<HTMLElement>(`.heat-row[data-heat-index="${index | 0}"]`);
      el?.classList.add('focused');
      el?.scrollIntoView({ block: 'nearest' });
    },
  };
}

/** A legend strip for a scale: the buckets from most negative to most positive, with the end values. */
export function legend(q: Quantity, scale: Scale, label: string): HTMLElement {
  const box = document.createElement('div');
  box.className = `legend q-${q}`;
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
  const endValue = (sign: number) => {
    if (q === 'ratio') return (scale.center * Math.exp(sign * scale.span)).toPrecision(3);
    if (q === 'logp') return (-scale.span).toPrecision(3);
    return (scale.center + sign * scale.span).toPrecision(3);
  };
  const left = document.createElement('span');
  left.textContent = scale.kind === 'diverging' ? endValue(-1) : q === 'logp' ? '0' : String(scale.center);
  box.append(left);
  for (let b = scale.kind === 'diverging' ? -LEVELS : 0; b <= LEVELS; b++) {
    const sw = document.createElement('span');
    sw.className = b === 0 ? 'swatch' : `swatch ${bucketClass(b)}`;
    box.append(sw);
  }
  const right = document.createElement('span');
  right.textContent = endValue(1);
  box.append(right);
  return box;
}
