/**
 * Policy vs reference: the same question through both models, side by side. Each side's completion is
 * drawn as a token heatmap coloured by per-token KL or by log π_θ − log π_ref; sequence-level KL on top.
 */
import { tooltipText } from '../../src/shared/hover';
import { fmt, QUANTITY_LABEL, scaleFor } from '../../src/shared/values';
import type { CompareResult } from '../../src/shared/records';
import { isHostToCompare, type CompareToHost } from '../../src/inspect/compareProtocol';
import { dropdown, el, registerComponents } from '../components';
import { heatmap, legend } from '../heatmap';
import { describe, getState, listen, post, setState } from '../host';

registerComponents();
const send = (m: CompareToHost) => post(m);
const app = document.getElementById('app') as HTMLElement;
type Q = 'kl' | 'logp_diff';
let quantity: Q = (getState() as { quantity?: Q } | undefined)?.quantity ?? 'kl';
let result: CompareResult | null = null;

const title = el('h2', { id: 'title' });
const meta = el('div', { class: 'meta' });
const errorBox = el('div', { class: 'error', id: 'error', role: 'alert' });
errorBox.hidden = true;
const legendBox = el('div', { class: 'legend-box' });
const pick = dropdown('Colour tokens by', [{ value: 'kl', label: QUANTITY_LABEL.kl }, { value: 'logp_diff', label: QUANTITY_LABEL.logp_diff }], quantity, (v) => {
  quantity = v as Q;
  setState({ quantity });
  draw();
}, { id: 'quantity' });

const sides = (['policy', 'reference'] as const).map((which) => {
  const h = heatmap((_row, t) => {
    const s = result![which];
    const lp = s.logp[t];
    const other = which === 'policy' ? result!.policy.ref_logp[t] : result!.reference.policy_logp[t];
    const policyLp = which === 'policy' ? lp : other;
    const refLp = which === 'policy' ? other : lp;
    return tooltipText({ token: s.tokens[t], index: t, count: s.tokens.length, logp: policyLp, refLogp: refLp, kl: s.kl[t] }, `the ${which}'s completion`);
  });
  const head = el('div', { class: 'side-head' });
  const box = el('section', { class: `side ${which}`, id: `side-${which}` }, el('h3', {}, which === 'policy' ? 'Policy π_θ' : 'Reference π_ref'), head, h.element);
  return { which, h, head, box };
});
app.append(el('header', {}, title, meta), errorBox, el('div', { class: 'heat-head' }, pick.element, legendBox), el('div', { class: 'sides' }, ...sides.map((s) => s.box)));

function draw(): void {
  const r = result;
  if (!r) return;
  const scale = scaleFor(quantity, [...r.policy[quantity], ...r.reference[quantity]]);
  for (const s of sides) {
    const side = r[s.which];
    const sum = side.logp.reduce((a, b) => a + b, 0);
    s.head.textContent = `${side.tokens.length} tokens · sequence KL ${fmt(r.sequence_kl[s.which], 5)} · Σ log-prob under the ${s.which} ${fmt(sum, 3)}`;
    s.h.draw([{ index: 0, label: '', tokens: side.tokens, values: side[quantity] }], quantity, scale);
  }
  legendBox.replaceChildren(legend(quantity, scale, QUANTITY_LABEL[quantity]));
}

listen(isHostToCompare, (m) => {
  if (m.type === 'compare') {
    result = m.result;
    errorBox.hidden = true;
    title.textContent = m.title;
    meta.replaceChildren(el('div', {}, el('span', { class: 'k' }, 'question '), el('code', {}, m.result.question)),
      el('div', {}, el('span', { class: 'k' }, 'sequence KL: '), `policy's completion ${fmt(m.result.sequence_kl.policy, 5)}, reference's completion ${fmt(m.result.sequence_kl.reference, 5)}`));
    draw();
  } else {
    errorBox.textContent = m.message;
    errorBox.hidden = false;
  }
}, (v) => send({ type: 'log', level: 'error', message: `compare: invalid message from the host: ${describe(v)}` }));
send({ type: 'ready' });
