/**
 * What if: one logged step replayed from the state before it, under the run's own settings and under
 * alternative objectives (TRL's setting names), side by side. One row per completion of the step's batch,
 * one column per variant (the run's first); each cell draws the completion's tokens coloured by Δ log π —
 * how much this update, under that variant, pushes the token's log-probability up (green) or down (red) —
 * with the exact Δ, the token and its advantage on hover, and the completion's sequence-level Δ above it.
 * Rows are sorted by |Δ seq| of a chosen column (first the first alternative). Each column's head says its
 * loss, gradient norm and where the signal went (the dashboard's signal ledger, in one line); the run's own
 * column says how closely the replay reproduces the logged step. Long batches show 20 rows, then more on
 * demand. The request can be cancelled; its errors (a step without a replay record) are shown here.
 */
import type { ReplayResult } from '../../src/shared/records';
import { fmt } from '../../src/shared/values';
import {
  isHostToWhatIf, MAX_VARIANTS, missingRecordNote, parseFreeVariants, PRESET_FAMILIES, replayParams, sameAsRun, VARIANT_PRESETS, describeSettings,
  type Chosen, type WhatIfToHost, type WhatIfView,
} from '../../src/inspect/whatifProtocol';
import { button, checkbox, dropdown, el, registerComponents, section, spinner, textField, type FieldHandle } from '../components';
import { escapeHtml, installRules, legend, tokensHtml, tokenTooltips } from '../heatmap';
import { describe, getState, listen, post, setState } from '../host';
import { formatShare } from '../dashboard/ledger';
import {
  cellValues, columnsOf, defaultSortColumn, deltas, deltaScale, diffFromRun, ledgerLine, maxAbsSeq, meanAbsDelta, reproducedLine, rowOrder, signed, smallDiff,
  tokenTip, type Column, type RowOrder,
} from './model';

registerComponents();
installRules();
const send = (m: WhatIfToHost) => post(m);
const app = document.getElementById('app') as HTMLElement;
const PAGE = 20;

type ScaleMode = 'shared' | 'column';
interface State { scale: ScaleMode }
let scaleMode: ScaleMode = (getState() as Partial<State> | undefined)?.scale ?? 'shared';

let view: WhatIfView | null = null;
let chosen: Chosen = { presets: [], free: '' };
let result: ReplayResult | null = null;
let cols: Column[] = [];
let order: RowOrder = { by: 'index' };
let shownRows = PAGE;
let ticker: ReturnType<typeof setInterval> | undefined;
let applying = false; // the toolkit's checkboxes say `change` when set from here too: only the user's count

// --- header ---------------------------------------------------------------------------------------------
const title = el('h2', { id: 'title' }, 'What if…');
const meta = el('div', { class: 'meta', id: 'meta' });

// --- the chooser ------------------------------------------------------------------------------------------
const boxes = new Map<string, FieldHandle>();
const familyRows = PRESET_FAMILIES.map((f) => el('div', { class: 'family' }, el('span', { class: 'family-label' }, f.label),
  ...VARIANT_PRESETS.filter((p) => p.family === f.family).map((p) => {
    const box = checkbox(p.label, false, (on) => {
      if (applying) return;
      chosen = { ...chosen, presets: on ? [...chosen.presets.filter((x) => x !== p.id), p.id] : chosen.presets.filter((x) => x !== p.id) };
      validate();
    }, { id: `preset-${p.id}`, title: p.title });
    box.element.dataset.preset = p.id;
    boxes.set(p.id, box);
    return box.element;
  })));
const free = textField('', '', (v) => {
  chosen = { ...chosen, free: v };
  validate();
}, { id: 'free', title: 'key=value pairs, one variant; a semicolon starts another: "loss_type=dapo, epsilon_high=0.28; beta=0"' });
free.element.setAttribute('placeholder', 'loss_type=dapo, epsilon_high=0.28; beta=0');
free.element.setAttribute('size', '44');
const chooserError = el('div', { class: 'chooser-error', id: 'chooser-error', role: 'alert' });
const chosenNote = el('span', { class: 'chosen-note', id: 'chosen-note' });
const replayBtn = button('Replay', () => replay(), { id: 'replay', title: 'Replay the step from the state before it under the run\'s settings and each variant chosen' });
const intro = el('div', { class: 'intro', id: 'intro' }, 'Replays this logged step from the state saved before it: once under the run\'s own settings, and once under each variant, every time from the same state and batch. Each completion\'s tokens are then coloured by how much that update moves their log-probability.');
const chooserBody = el('div', { class: 'chooser' }, intro, ...familyRows, el('div', { class: 'family free-row' }, el('span', { class: 'family-label' }, 'other settings'), free.element),
  el('div', { class: 'actions' }, replayBtn.element, chosenNote), chooserError);
const chooser = section('Objective variants', true, chooserBody);
chooser.id = 'chooser';
const chosenSummary = el('span', { class: 'chosen-summary', id: 'chosen-summary' });
chooser.querySelector('summary')!.append(chosenSummary);

// --- status, errors, trust ----------------------------------------------------------------------------------
const statusText = el('span', { id: 'status-text' });
const cancelBtn = button('Cancel', () => send({ type: 'cancel' }), { secondary: true, id: 'cancel', title: 'Stop waiting (the trainer may still finish the replay; its answer is dropped)' });
const status = el('div', { class: 'status', id: 'status', role: 'status' }, spinner(), statusText, cancelBtn.element);
status.hidden = true;
const missing = el('div', { class: 'note missing', id: 'missing' });
missing.hidden = true;
const note = el('div', { class: 'note', id: 'note' });
note.hidden = true;
const errorBox = el('div', { class: 'error', id: 'error', role: 'alert' });
errorBox.hidden = true;
const reproduced = el('div', { class: 'reproduced', id: 'reproduced' });
reproduced.hidden = true;

// --- the comparison ---------------------------------------------------------------------------------------------
const sortBox = el('div', { class: 'sort-box' });
const scalePick = dropdown('Colour scale', [{ value: 'shared', label: 'one scale for every column' }, { value: 'column', label: 'each column its own' }], scaleMode, (v) => {
  scaleMode = v === 'column' ? 'column' : 'shared';
  setState({ scale: scaleMode } satisfies State);
  draw();
}, { id: 'scale', title: 'One scale compares the variants\' update sizes; one per column shows each variant\'s pattern' });
const legendBox = el('div', { class: 'legend-box', id: 'legend' });
const controls = el('div', { class: 'heat-head controls' }, sortBox, scalePick.element, legendBox);
const grid = el('div', { class: 'wi-grid heatmap q-logp_diff', id: 'grid', role: 'table', 'aria-label': 'Completions by variant' });
const moreCount = el('span', { class: 'more-count', id: 'more-count' });
const moreBtn = button(`Show ${PAGE} more`, () => {
  shownRows += PAGE;
  draw();
}, { secondary: true, id: 'more' });
const allBtn = button('Show all', () => {
  shownRows = Number.POSITIVE_INFINITY;
  draw();
}, { secondary: true, id: 'all' });
const more = el('div', { class: 'more' }, moreCount, moreBtn.element, allBtn.element);
const comparison = el('div', { id: 'comparison' }, reproduced, controls, grid, more);
comparison.hidden = true;

app.append(el('header', {}, el('div', { class: 'title-row' }, title), meta), missing, chooser, status, note, errorBox, comparison);

tokenTooltips(grid, (span, token) => {
  const cell = span.closest('[data-col]') as HTMLElement | null;
  const row = span.closest('[data-completion-index]') as HTMLElement | null;
  if (!cell || !row || !result) return '';
  return tokenTip(result, cols, Number(cell.dataset.col), Number(row.dataset.completionIndex), token);
});
grid.addEventListener('click', (e) => {
  const head = (e.target as HTMLElement).closest('[data-sort-col]') as HTMLElement | null;
  if (head) setOrder({ by: 'delta', column: Number(head.dataset.sortCol) });
});

// --- the chooser's logic ------------------------------------------------------------------------------------------
function validate(): boolean {
  const p = view ? replayParams(view.step, chosen) : null;
  const freeOk = parseFreeVariants(chosen.free);
  free.setInvalid(freeOk.ok ? null : freeOk.error);
  chooserError.textContent = p && !p.ok ? p.error : '';
  chooserError.hidden = !chooserError.textContent;
  const n = p?.ok ? p.value.variants.length : 0;
  chosenNote.textContent = p?.ok ? (n ? `the run's own settings and ${n} variant${n === 1 ? '' : 's'} (at most ${MAX_VARIANTS})` : 'only the run\'s own settings: choose a variant to compare') : '';
  return !!p?.ok;
}

function replay(): void {
  if (!view || !validate()) return;
  const p = replayParams(view.step, chosen);
  if (p.ok) send({ type: 'replay', variants: p.value.variants, chosen });
}

function applyChosen(v: WhatIfView): void {
  chosen = { presets: [...v.chosen.presets], free: v.chosen.free };
  applying = true;
  for (const p of VARIANT_PRESETS) {
    const box = boxes.get(p.id)!;
    const mine = sameAsRun(p, v.runSettings);
    box.setValue(String(!mine && chosen.presets.includes(p.id)));
    box.setDisabled(mine);
    box.element.classList.toggle('this-run', mine);
    box.element.textContent = mine ? `${p.label} (this run)` : p.label;
    box.element.title = mine ? `${p.title} — this run's own setting already` : p.title;
  }
  free.setValue(chosen.free);
  applying = false;
  chosen.presets = chosen.presets.filter((id) => !sameAsRun(VARIANT_PRESETS.find((p) => p.id === id)!, v.runSettings));
  validate();
}

// --- the comparison's drawing ------------------------------------------------------------------------------------
function setOrder(o: RowOrder): void {
  order = o;
  draw();
}

function drawSort(): void {
  const options = [...cols.map((c, k) => ({ value: String(k), label: `|Δ seq| under ${c.isRun ? 'this run' : c.label}` })), { value: 'index', label: 'the batch\'s order' }];
  const pick = dropdown('Sort rows by', options, order.by === 'index' ? 'index' : String(order.column), (v) => setOrder(v === 'index' ? { by: 'index' } : { by: 'delta', column: Number(v) }), { id: 'sort' });
  sortBox.replaceChildren(pick.element);
}

function headHtml(r: ReplayResult, c: Column, k: number): string {
  const v = r.variants[c.variant];
  const led = ledgerLine(v.ledger, r.step);
  const bar = led.bands.map((b) => `<span class="band tone-${b.category.tone}" data-share="${b.share}" data-alpha="${b.category.alpha}" title="${escapeHtml(`${b.category.label}: ${(b.share * 100).toFixed(1)}%`)}"></span>`).join('');
  const parts = led.parts.map((p) => `<span class="lpart" title="${escapeHtml(p.title)}"><i class="dot tone-${p.tone}"></i>${escapeHtml(p.label)} ${escapeHtml(formatShare(p.share))}</span>`).join('<span class="sep"> · </span>');
  const sorted = order.by === 'delta' && order.column === k;
  const rep = c.isRun ? reproducedLine(r) : null;
  const vsRun = diffFromRun(r, cols, k);
  return `<div class="wi-head-cell${c.isRun ? ' run' : ''}${sorted ? ' sorted' : ''}" data-col="${k}" data-sort-col="${k}" role="columnheader" title="Sort the rows by |Δ seq| under this column">`
    + `<div class="col-name">${escapeHtml(c.isRun ? 'This run' : c.label)}${sorted ? '<span class="sort-mark"> ▼ |Δ seq|</span>' : ''}</div>`
    + `<div class="col-detail">${escapeHtml(c.detail)}</div>`
    + `<div class="col-stats"><span title="the loss, mean over the μ updates">loss <b>${escapeHtml(fmt(v.loss, 4))}</b></span><span title="the gradient norm before clipping">grad norm <b>${escapeHtml(fmt(v.grad_norm, 4))}</b></span><span title="mean |Δ log π| over every token of the batch">mean |Δ| <b>${escapeHtml(fmt(meanAbsDelta(v), 4))}</b></span></div>`
    + `<div class="ledger-bar" title="where the step's tokens went (the dashboard's signal ledger)">${bar}</div>`
    + `<div class="ledger-line" data-ledger="${escapeHtml(led.text)}">${parts || escapeHtml(led.text)}</div>`
    + (rep ? `<div class="col-repro ${rep.ok ? 'ok' : 'warn'}" title="${escapeHtml(rep.text)}">${rep.ok ? '✓' : '⚠'} reproduces the logged step to ${escapeHtml(smallDiff(v.reproduced ?? NaN))}</div>` : '')
    + (vsRun === null ? '' : vsRun.same
      ? `<div class="col-vsrun same" title="every token's Δ log π equals this run's (to ${escapeHtml(smallDiff(vsRun.max))}, round-off): for this batch the setting changes nothing">= the same update as this run</div>`
      : `<div class="col-vsrun" title="the largest difference, over every token, between this variant's Δ log π and this run's">Δ differs from this run's by up to ${escapeHtml(fmt(vsRun.max, 4))}</div>`)
    + '</div>';
}

function draw(): void {
  const r = result;
  if (!r) return;
  const t0 = performance.now();
  drawSort();
  const ids = rowOrder(r, cols, order);
  const rows = ids.slice(0, shownRows);
  const shared = deltaScale(deltas(r, cols));
  const scales = cols.map((c) => (scaleMode === 'shared' ? shared : deltaScale(deltas(r, [c]))));
  const maxSeq = maxAbsSeq(r, cols) || 1;
  grid.style.setProperty('--cols', String(cols.length));
  const parts: string[] = [`<div class="wi-row wi-head" role="row"><div class="wi-corner">completion</div>${cols.map((c, k) => headHtml(r, c, k)).join('')}</div>`];
  for (const i of rows) {
    const c = r.completions[i];
    const q = r.questions[c.group] ?? '';
    parts.push(`<div class="wi-row" role="row" data-completion-index="${i}">`
      + `<div class="wi-info"><div class="idx-row"><span class="idx">#${i}</span><span class="qchip" title="${escapeHtml(`question ${c.group + 1}: ${q}`)}">Q${c.group + 1}</span></div>`
      + `<div class="facts"><span title="reward">reward ${escapeHtml(fmt(c.reward, 2))}</span><span class="${c.advantage > 0 ? 'pos' : c.advantage < 0 ? 'neg' : ''}" title="the sequence-level advantage the run trained with">Â ${escapeHtml(signed(c.advantage, 2))}</span>`
      + `${c.truncated ? ' <span class="trunc" title="hit max_completion_length without EOS">truncated</span>' : ''}</div>`
      + `<div class="ntok">${c.tokens.length} tokens</div></div>`);
    cols.forEach((col, k) => {
      const d = r.variants[col.variant].delta_seq[i];
      const dir = d > 0 ? 'pos' : d < 0 ? 'neg' : '';
      parts.push(`<div class="wi-cell${order.by === 'delta' && order.column === k ? ' sorted' : ''}" data-col="${k}" data-delta-seq="${Number.isFinite(d) ? d : ''}">`
        + `<div class="seq"><span class="seq-bar ${dir}" data-w="${Number.isFinite(d) ? Math.abs(d) / maxSeq : 0}"></span><span class="seq-val ${dir}" title="Δ log π of the whole completion (the sum over its tokens)">Δ seq ${escapeHtml(signed(d, 4))}</span></div>`
        + `<div class="heat-tokens">${tokensHtml(c.tokens, cellValues(r, col.variant, i), scales[k])}</div></div>`);
    });
    parts.push('</div>');
  }
  grid.innerHTML = parts.join('');
  // widths and opacities through the CSSOM (the CSP allows no style attributes)
  for (const b of grid.querySelectorAll<HTMLElement>('.band')) {
    b.style.flexGrow = b.dataset.share ?? '0';
    b.style.opacity = b.dataset.alpha ?? '1';
  }
  for (const b of grid.querySelectorAll<HTMLElement>('.seq-bar')) b.style.width = `${Math.max(0, Math.min(1, Number(b.dataset.w))) * 40}%`;
  const left = ids.length - rows.length;
  more.hidden = left <= 0;
  moreCount.textContent = `${rows.length} of ${ids.length} completions shown`;
  moreBtn.element.textContent = `Show ${Math.min(PAGE, left)} more`;
  legendBox.replaceChildren(legend('logp_diff', scaleMode === 'shared' ? shared : scales[0], scaleMode === 'shared' ? 'Δ log π (after − before the update)' : 'Δ log π, this run\'s scale'),
    el('span', { class: 'legend-caption' }, 'red: less likely after the update · green: more likely'));
  document.body.dataset.columns = String(cols.length);
  document.body.dataset.rows = String(rows.length);
  document.body.dataset.sort = order.by === 'index' ? 'index' : String(order.column);
  void grid.offsetHeight;
  window.dispatchEvent(new CustomEvent('grpo-drawn', { detail: { ms: performance.now() - t0, rows: rows.length, columns: cols.length } }));
}

// --- phases ---------------------------------------------------------------------------------------------------------
function render(v: WhatIfView): void {
  chosenSummary.textContent = '';
  const first = view === null || view.step !== v.step || view.runDir !== v.runDir;
  view = v;
  title.textContent = `What if: step ${v.step}`;
  document.title = `What if: step ${v.step}`;
  document.body.dataset.phase = v.phase.kind;
  document.body.dataset.step = String(v.step);
  replayBtn.element.textContent = `Replay step ${v.step}`;
  if (first || v.phase.kind !== 'loading') applyChosen(v);
  clearInterval(ticker);
  status.hidden = v.phase.kind !== 'loading';
  replayBtn.setDisabled(v.phase.kind === 'loading');
  errorBox.hidden = v.phase.kind !== 'error';
  note.hidden = v.phase.kind !== 'cancelled';
  const p = v.phase;
  const metaParts = [`run ${v.runName}`];
  const why = p.kind === 'result' ? null : missingRecordNote(v.step, v.replayable);
  missing.hidden = !why;
  missing.replaceChildren(...(why ? [el('span', {}, why), ...v.replayable.slice(-12).reverse().map((s) =>
    button(`step ${s}`, () => send({ type: 'openStep', step: s }), { secondary: true, title: `What if: step ${s}` }).element)] : []));
  switch (p.kind) {
    case 'loading': {
      const n = p.variants.length;
      const what = `Replaying step ${v.step} under the run's settings${n ? ` and ${n} variant${n === 1 ? '' : 's'}: ${p.variants.map(describeSettings).join(' · ')}` : ''}`;
      const tick = () => (statusText.textContent = `${what}… ${Math.max(0, Math.round((Date.now() - p.since) / 1000))} s`);
      tick();
      ticker = setInterval(tick, 1000);
      comparison.hidden = true;
      break;
    }
    case 'result': {
      const r = p.result;
      if (r !== result) {
        result = r;
        cols = columnsOf(r);
        order = { by: 'delta', column: defaultSortColumn(cols) };
        shownRows = PAGE;
      }
      metaParts.push(`${r.completions.length} completions of ${r.questions.length} question${r.questions.length === 1 ? '' : 's'}`, `replayed by ${p.source} in ${r.seconds.toFixed(1)} s`);
      const rep = reproducedLine(r);
      reproduced.hidden = !rep;
      reproduced.className = `reproduced ${rep?.ok ? 'ok' : 'warn'}`;
      reproduced.textContent = rep ? `${rep.ok ? '✓' : '⚠'} ${rep.text}` : '';
      comparison.hidden = false;
      chooser.open = false;
      chosenSummary.textContent = `— ${cols.filter((c) => !c.isRun).map((c) => c.detail).join(' · ') || 'only the run\'s own settings'} (open to change and replay)`;
      draw();
      break;
    }
    case 'error':
      errorBox.textContent = p.message;
      comparison.hidden = true;
      chooser.open = true;
      break;
    case 'cancelled':
      note.textContent = 'Cancelled. The trainer may still finish the replay in the background; its answer is dropped.';
      comparison.hidden = true;
      chooser.open = true;
      break;
    case 'choose':
      comparison.hidden = true;
      chooser.open = true;
      break;
  }
  meta.textContent = metaParts.join(' · ');
}

listen(isHostToWhatIf, (m) => render(m.view),
  (v) => send({ type: 'log', level: 'error', message: `what if: invalid message from the host: ${describe(v)}` }));
send({ type: 'ready' });
