/**
 * The group inspector: one row per completion (text, reward with per-step rewards, advantage, length,
 * truncation; sortable; each row carries `data-completion-index`), and below it the token heatmap of
 * every completion coloured by a chosen quantity, exact values on hover, step boundaries marked. A
 * sequence-level group (no per-token arrays, e.g. imported from TRL's completion tables) shows its rewards
 * and advantages, lengths in characters, and in place of the heatmap a note: Open scores a completion.
 * A group the run live in this window logged can be followed: each group it logs replaces it as it is logged.
 * Each group's kind shows as a badge (mixed, or which kind of no signal: all rewards equal, advantages 0),
 * in the header and in the list of the run's logged groups beside it, which can be narrowed to the groups
 * with no signal; picking one there shows it.
 */
import { tooltipText } from '../../src/shared/hover';
import { completionLength, fmt, QUANTITIES, QUANTITY_LABEL, quantityValues, scaleFor, sortRows, stepOfTokens, type Quantity, type SortKey } from '../../src/shared/values';
import type { GroupRecord } from '../../src/shared/records';
import { groupKind, hasNoSignal, KIND_LABEL, KIND_TITLE, type GroupKind } from '../../src/shared/groupKind';
import { isHostToInspector, type GroupOrigin, type HostToInspector, type InspectorToHost, type LoggedEntry } from '../../src/inspect/inspectorProtocol';
import { button, checkbox, dropdown, el, registerComponents } from '../components';
import { heatmap, legend, type HeatRow } from '../heatmap';
import { rewardFunctionCells, rewardFunctionHeads, saveAsTestButton } from './rewardColumns';
import { describe, getState, listen, post, setState } from '../host';

registerComponents();
const send = (m: InspectorToHost) => post(m);
const app = document.getElementById('app') as HTMLElement;

interface State { quantity: Quantity; sort: SortKey; desc: boolean; noSignalOnly: boolean }
const saved = getState() as Partial<State> | undefined;
let noSignalOnly = saved?.noSignalOnly ?? false;
let logged: LoggedEntry[] = [];
let quantity: Quantity = saved?.quantity ?? 'advantage';
let sort: SortKey = saved?.sort ?? 'index';
let desc = saved?.desc ?? false;
let group: GroupRecord | null = null;
let origin: GroupOrigin | null = null;
let focus: number | null = null;

const title = el('h2', { id: 'title' });
const kindBadge = el('span', { class: 'kind-badge', id: 'kind' });
// A logged group's step can be replayed under other objectives (the What-if panel).
const whatIf = button('What if…', () => send({ type: 'whatIf' }), { secondary: true, id: 'whatif', title: 'Replay this training step from the state before it under other objectives (loss_type, GSPO, scale_rewards, clip-higher, masks) and compare how each moves every token' });
whatIf.element.hidden = true;
const kindNote = el('div', { class: 'kind-note', id: 'kind-note' });
let applying = false; // the toolkit's checkbox says `change` when it is set, too: only the user's changes are sent
const followBox = checkbox('Follow the newest group', false, (on) => applying || send({ type: 'follow', on }), {
  id: 'follow', title: 'Show each group the live run logs (every log_samples_steps steps) as it is logged',
});
const followRow = el('div', { class: 'follow' }, followBox.element); // a div: `hidden` does not hide a toolkit element
followRow.hidden = true;
const meta = el('div', { class: 'meta', id: 'meta' });
const errorBox = el('div', { class: 'error', id: 'error', role: 'alert' });
errorBox.hidden = true;
const table = el('table', { class: 'group', id: 'group-table' });
const legendBox = el('div', { class: 'legend-box' });
const quantityPick = dropdown('Colour tokens by', QUANTITIES.map((q) => ({ value: q, label: QUANTITY_LABEL[q] })), quantity, (v) => {
  quantity = v as Quantity;
  persist();
  drawHeatmap();
}, { id: 'quantity' });
const heat = heatmap((row, tok) => tokenTooltip(row, tok), (row) => select(row));
const SEQUENCE_NOTE = 'sequence-level group (imported): no per-token values were recorded. Open a completion to score it token by token (ONNX in the editor, or the trainer through serve).';
const heatNote = el('div', { class: 'heat-note', id: 'heat-note' }, SEQUENCE_NOTE);
heatNote.hidden = true;
// The run's logged groups, newest first, each with its kind; "Only groups with no signal" narrows the list.
const listCount = el('span', { class: 'list-count', id: 'group-count' });
const noSignalBox = checkbox('Only groups with no signal', noSignalOnly, (on) => {
  noSignalOnly = on;
  persist();
  renderList();
}, { id: 'no-signal-only', title: 'List only the groups whose rewards are all equal (all correct, all wrong, or equal for another reason): their advantages are 0, so they give no policy gradient' });
const list = el('ul', { class: 'group-list', id: 'group-list', role: 'listbox', 'aria-label': 'Logged groups of this run' });
const listPanel = el('aside', { class: 'groups-panel', id: 'groups' }, el('div', { class: 'list-head' }, el('h3', {}, 'Logged groups'), listCount), noSignalBox.element, list);
listPanel.hidden = true;
app.append(
  el('div', { class: 'layout' },
    listPanel,
    el('main', {},
      el('header', {}, el('div', { class: 'title-row' }, title, kindBadge, whatIf.element), meta, kindNote, followRow),
      errorBox,
      table,
      el('div', { class: 'heat-head' }, el('h3', {}, 'Tokens'), quantityPick.element, legendBox),
      heatNote,
      heat.element,
    )),
);

function persist(): void {
  setState({ quantity, sort, desc, noSignalOnly } satisfies State);
}

function setBadge(b: HTMLElement, kind: GroupKind | null): void {
  b.className = `kind-badge kind-${kind ?? 'unknown'}`;
  b.textContent = kind ? KIND_LABEL[kind] : 'kind unknown';
  b.title = kind ? KIND_TITLE[kind] : 'its line in samples.jsonl names no rewards';
  b.dataset.kind = kind ?? 'unknown';
}

function renderList(): void {
  listPanel.hidden = logged.length === 0;
  document.body.dataset.noSignalOnly = String(noSignalOnly);
  const silent = logged.filter((g) => g.kind !== null && hasNoSignal(g.kind)).length;
  const shownStep = origin?.logged ? group?.step ?? null : null;
  const items = logged.filter((g) => !noSignalOnly || (g.kind !== null && hasNoSignal(g.kind))).reverse();
  listCount.textContent = noSignalOnly ? `${items.length} of ${logged.length} have no signal` : `${logged.length} · ${silent} without signal`;
  list.replaceChildren(...items.map((g) => {
    const badge = el('span', {});
    setBadge(badge, g.kind);
    const li = el('li', { class: `group-item${g.step === shownStep ? ' current' : ''}`, role: 'option', tabindex: '0', 'data-step': String(g.step), 'data-kind': g.kind ?? 'unknown', 'aria-selected': String(g.step === shownStep), title: `Show the group logged at step ${g.step}` },
      el('span', { class: 'item-step' }, `step ${g.step}`), badge);
    const open = () => send({ type: 'openLogged', step: g.step });
    li.addEventListener('click', open);
    li.addEventListener('keydown', (e) => (e.key === 'Enter' || e.key === ' ') && (e.preventDefault(), open()));
    return li;
  }));
  if (!items.length) list.append(el('li', { class: 'list-empty' }, noSignalOnly ? 'No logged group without signal.' : 'No group logged yet.'));
}

function select(i: number): void {
  focus = i;
  for (const tr of table.querySelectorAll('tr[data-completion-index]')) tr.classList.toggle('focused', Number((tr as HTMLElement).dataset.completionIndex) === i);
  heat.highlight(i);
}

const COLUMNS: { key: SortKey | null; label: string; title: string }[] = [
  { key: 'index', label: '#', title: 'completion index in the group' },
  { key: 'reward', label: 'reward', title: 'outcome reward, and the reward of each reasoning step' },
  { key: 'advantage', label: 'advantage', title: 'group-relative advantage, computed as training does' },
  { key: 'length', label: 'tokens', title: 'completion length in tokens (EOS included); in a sequence-level group, in characters' },
  { key: 'truncated', label: 'truncated', title: 'hit the maximum completion length without EOS' },
  { key: 'correct', label: 'correct', title: 'final answer right' },
  { key: null, label: 'completion', title: 'the completion text (click a row to find it in the heatmap; Open shows it in an editor with per-token shading)' },
];

function renderTable(): void {
  const g = group;
  if (!g) return;
  const head = el('tr', {}, ...COLUMNS.map((c) => {
    const label = c.key === 'length' && !g.tokens ? 'characters' : c.label;
    const th = el('th', { title: c.title, class: c.key ? 'sortable' : undefined }, label + (c.key === sort ? (desc ? ' ▼' : ' ▲') : ''));
    if (c.key) th.addEventListener('click', () => {
      if (sort === c.key) desc = !desc;
      else {
        sort = c.key!;
        desc = c.key !== 'index';
      }
      persist();
      renderTable();
      drawHeatmap();
    });
    return th;
  }));
  head.children[1].after(...rewardFunctionHeads(g)); // one column per reward function, after the reward
  const body = sortRows(g, sort, desc).map((i) => {
    const steps = g.step_rewards?.[i];
    const reward = el('td', { class: 'num' }, fmt(g.rewards[i], 3));
    if (steps?.length) reward.append(el('div', { class: 'steps', title: 'reward per reasoning step' }, ...steps.map((r, j) => el('span', { class: `step ${r > 0 ? 'good' : 'bad'}`, title: `step ${j + 1}: ${r}` }, fmt(r, 2)))));
    const open = button('Open', () => send({ type: 'openCompletion', index: i }), { secondary: true, title: 'Open as a read-only document with per-token shading and hovers' });
    const tr = el('tr', { 'data-completion-index': String(i) },
      el('td', { class: 'num' }, String(i)),
      reward,
      ...rewardFunctionCells(g, i),
      el('td', { class: `num ${g.advantages[i] > 0 ? 'pos' : g.advantages[i] < 0 ? 'neg' : ''}` }, fmt(g.advantages[i], 3)),
      el('td', { class: 'num' }, String(completionLength(g, i).n)),
      g.truncated ? el('td', {}, g.truncated[i] ? 'yes' : '') : el('td', { title: 'not recorded in a sequence-level group' }, '–'),
      el('td', {}, g.correct ? (g.correct[i] ? '✓' : '✗') : ''),
      el('td', { class: 'text' }, el('pre', {}, g.completions[i]), open.element, ' ', saveAsTestButton(i, (index) => send({ type: 'saveRewardTest', index }))),
    );
    tr.addEventListener('click', (e) => {
      if ((e.target as HTMLElement).closest('vscode-button')) return;
      select(i);
    });
    if (focus === i) tr.classList.add('focused');
    return tr;
  });
  table.replaceChildren(el('thead', {}, head), el('tbody', {}, ...body));
}

function tokenTooltip(row: number, t: number): string {
  const g = group!;
  const a = g.tokens?.[row];
  if (!a) return '';
  const stepIdx = stepOfTokens(a.text.length, g.step_ends?.[row])?.[t];
  return tooltipText({
    token: a.text[t], index: t, count: a.text.length, logp: a.logp[t], refLogp: a.ref_logp[t], kl: a.kl[t], oldLogp: a.old_logp[t],
    ratio: Math.exp(a.logp[t] - a.old_logp[t]), advantage: a.advantage[t], entropy: a.entropy[t],
    step: stepIdx === undefined ? null : { index: stepIdx < 0 ? (g.step_ends?.[row].length ?? 0) : stepIdx, reward: stepIdx < 0 ? null : g.step_rewards?.[row]?.[stepIdx] ?? null },
  }, `completion ${row}`);
}

function drawHeatmap(): void {
  const g = group;
  if (!g) return;
  const t0 = performance.now();
  const order = sortRows(g, sort, desc);
  const arrays = g.tokens; // absent in a sequence-level group: no rows, the note instead
  heatNote.hidden = !!arrays;
  quantityPick.element.hidden = legendBox.hidden = !arrays;
  document.body.dataset.level = arrays ? 'token' : 'sequence';
  const rows: HeatRow[] = !arrays ? [] : order.map((i) => ({ index: i, label: `#${i}`, tokens: arrays[i].text, values: quantityValues(arrays[i], quantity), stepEnds: g.step_ends?.[i] }));
  const scale = scaleFor(quantity, (function* () { for (const r of rows) yield* r.values; })());
  const build = heat.draw(rows, quantity, scale);
  legendBox.replaceChildren(legend(quantity, scale, QUANTITY_LABEL[quantity]));
  if (focus !== null) heat.highlight(focus);
  const tokens = rows.reduce((n, r) => n + r.tokens.length, 0);
  document.body.dataset.tokens = String(tokens);
  // Drawn = laid out: reading a layout property forces it now, so the time covers style + layout.
  void heat.element.offsetHeight;
  const ms = performance.now() - t0;
  window.dispatchEvent(new CustomEvent('grpo-drawn', { detail: { ms, build, tokens } }));
}

function render(m: Extract<HostToInspector, { type: 'group' }>): void {
  group = m.group;
  origin = m.origin;
  focus = m.focus;
  if (m.quantity) {
    quantity = m.quantity;
    quantityPick.setValue(quantity);
    persist();
  }
  errorBox.hidden = true;
  title.textContent = m.title;
  const g = m.group;
  const kind = groupKind(g);
  setBadge(kindBadge, kind);
  document.body.dataset.kind = kind;
  kindNote.textContent = hasNoSignal(kind)
    ? `No signal: every reward in this group is ${fmt(g.rewards[0] ?? 0, 3)}, so every advantage is 0 and its tokens carry no policy gradient (only the KL term acts on them).`
    : '';
  kindNote.hidden = !hasNoSignal(kind);
  const mean = g.rewards.reduce((a, b) => a + b, 0) / Math.max(1, g.rewards.length);
  meta.replaceChildren(
    el('div', {}, el('span', { class: 'k' }, 'question '), el('code', { id: 'question' }, g.question)),
    el('div', {}, el('span', { class: 'k' }, 'answer '), el('code', {}, g.answer ?? '–'), el('span', { class: 'k' }, '  mean reward '), fmt(mean, 3),
      el('span', { class: 'k' }, '  source '), origin.logged ? `logged at training step ${g.step ?? '?'}` : origin.checkpoint ? `sampled from ${origin.checkpoint.split(/[\\/]/).pop()}` : 'sampled from the live trainer'),
  );
  followRow.hidden = m.follow === null;
  applying = true;
  followBox.setValue(String(m.follow === true));
  applying = false;
  document.body.dataset.follow = m.follow === null ? 'unavailable' : String(m.follow);
  document.body.dataset.step = String(g.step ?? '');
  whatIf.element.hidden = !(m.origin.logged && m.origin.step !== null);
  document.body.dataset.completions = String(g.completions.length);
  renderTable();
  drawHeatmap();
  if (focus !== null) select(focus);
  renderList();
}

listen(isHostToInspector, (m) => {
  if (m.type === 'group') render(m);
  else if (m.type === 'logged') {
    logged = m.groups;
    renderList();
  } else {
    errorBox.textContent = m.message;
    errorBox.hidden = false;
  }
}, (v) => send({ type: 'log', level: 'error', message: `inspector: invalid message from the host: ${describe(v)}` }));
send({ type: 'ready' });
