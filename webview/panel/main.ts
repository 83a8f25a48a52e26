/**
 * The Training view: the run's settings as a form (built from the settings schema), the run controls,
 * and a compact live summary. The page owns the values while it is open: Start posts them with the request
 * (the host checks them once and starts with them), and every change is posted for the host to remember
 * per workspace, to fill the form next time.
 */
import { formatDuration, formatNumber } from '../../src/shared/format';
import { isHostToPanel, type HostToPanel, type LiveSummary, type PanelToHost } from '../../src/training/panelProtocol';
import { IDLE_PREFLIGHT, isStale, reportNumbers, settingsKey, VERDICT_LABEL, type PreflightState } from '../../src/training/preflight';
import { formatFieldValue, MAIN_KEYS, parseFieldText, PRESETS, presetValues, validateValue, type SettingSpec, type SettingValues } from '../../src/shared/settings';
import { badge, button, checkbox, dropdown, el, registerComponents, section, spinner, textField, type FieldHandle } from '../components';
import { describe, listen, post } from '../host';

registerComponents();
const send = (m: PanelToHost) => post(m);
const app = document.getElementById('app') as HTMLElement;

let schema: SettingSpec[] = [];
let values: SettingValues = {};
let trusted = true;
let summary: LiveSummary | null = null;
let preflight: PreflightState = IDLE_PREFLIGHT;
const fields = new Map<string, FieldHandle>();
const invalid = new Set<string>();

// --- Controls ----------------------------------------------------------------------------------------
const startBtn = button('Start', () => send({ type: 'start', values }), { id: 'start', title: 'Start training with these settings' });
const preflightBtn = button('Preflight', () => send({ type: 'preflight', values }), { secondary: true, id: 'preflight', title: 'Predict whether these settings train: samples from the start policy, checks signal, truncation, rewards, time and memory (seconds to a minute)' });
const cancelPreflightBtn = button('Cancel preflight', () => send({ type: 'cancelPreflight' }), { secondary: true, id: 'cancel-preflight' });
const pauseBtn = button('Pause', () => send({ type: 'control', action: 'pause' }), { secondary: true, id: 'pause' });
const resumeBtn = button('Resume', () => send({ type: 'control', action: 'resume' }), { secondary: true, id: 'resume' });
const stopBtn = button('Stop', () => send({ type: 'control', action: 'stop' }), { secondary: true, id: 'stop', title: 'Finish the current step, save a checkpoint and stop' });
const dashBtn = button('Dashboard', () => send({ type: 'openDashboard' }), { secondary: true, id: 'open-dashboard' });

const stateBadge = el('span', { class: 'state', id: 'run-state' });
const runName = el('span', { class: 'run-name', id: 'run-name' });
const cells = {
  step: el('span', { id: 'sum-step' }),
  reward: el('span', { id: 'sum-reward' }),
  accuracy: el('span', { id: 'sum-accuracy' }),
  kl: el('span', { id: 'sum-kl' }),
  elapsed: el('span', { id: 'sum-elapsed' }),
  eta: el('span', { id: 'sum-eta' }),
};
const errorLine = el('div', { class: 'error', id: 'sum-error', role: 'alert' });
const note = el('div', { class: 'note', id: 'sum-note' });
const summaryBox = el(
  'div',
  { class: 'summary', id: 'summary' },
  el('div', { class: 'summary-head' }, stateBadge, runName),
  el('dl', {}, ...Object.entries(cells).flatMap(([k, v]) => [el('dt', {}, k === 'kl' ? 'KL' : k === 'eta' ? 'ETA' : k[0].toUpperCase() + k.slice(1)), el('dd', {}, v)])),
  errorLine,
  note,
);
const trustBanner = el('div', { class: 'banner', id: 'untrusted', role: 'note' },
  'This workspace is not trusted. Training runs Python code with an interpreter chosen by the workspace settings, so starting and resuming are disabled. Trust the workspace to train; runs and dashboards can still be viewed.');
const form = el('div', { class: 'form', id: 'settings' });
const preflightBox = el('div', { class: 'preflight', id: 'preflight-result', role: 'status', 'aria-live': 'polite' });

app.append(trustBanner, summaryBox, el('div', { class: 'buttons' }, startBtn.element, preflightBtn.element, cancelPreflightBtn.element, pauseBtn.element, resumeBtn.element, stopBtn.element, dashBtn.element), preflightBox, form);

// --- Preflight -----------------------------------------------------------------------------------------
function renderPreflight(): void {
  const p = preflight;
  const running = p.status === 'running';
  preflightBtn.setDisabled(!trusted || running || invalid.size > 0);
  cancelPreflightBtn.element.hidden = !running;
  preflightBox.hidden = p.status === 'idle';
  preflightBox.dataset.status = p.status;
  const stale = schema.length > 0 && isStale(p, settingsKey(values, schema));
  preflightBox.classList.toggle('stale', stale);
  const parts: Node[] = [];
  if (running) {
    const secs = p.startedAt ? Math.max(0, Math.round((Date.now() - p.startedAt) / 1000)) : 0;
    parts.push(el('div', { class: 'preflight-head' }, spinner(), el('span', {}, `Preflight running… ${secs} s`)));
    if (p.progress) parts.push(el('div', { class: 'preflight-progress', id: 'preflight-progress' }, p.progress));
  } else if (p.status === 'cancelled') {
    parts.push(el('div', { class: 'preflight-head' }, 'Preflight cancelled.'));
  } else if (p.status === 'failed') {
    parts.push(el('div', { class: 'preflight-head' }, 'Preflight failed'), el('div', { class: 'error', id: 'preflight-error' }, p.error ?? 'unknown error'));
  } else if (p.status === 'done' && p.report) {
    const r = p.report;
    const verdict = el('span', { class: `verdict verdict-${r.verdict}`, id: 'preflight-verdict' }, VERDICT_LABEL[r.verdict]);
    parts.push(el('div', { class: 'preflight-head' }, el('span', {}, 'Preflight: '), verdict, stale ? el('span', { class: 'stale-note', id: 'preflight-stale' }, 'stale: settings changed since; run it again') : ''));
    if (r.error) parts.push(el('div', { class: 'error' }, r.error));
    if (r.problems.length) {
      parts.push(el('ul', { class: 'problems', id: 'preflight-problems' }, ...r.problems.map((q) =>
        el('li', { class: `problem problem-${q.severity}` }, el('span', { class: 'severity' }, q.severity), ' ', el('span', { class: 'message' }, q.message), el('div', { class: 'change' }, `→ ${q.change}`)))));
    } else if (r.verdict === 'healthy') parts.push(el('div', { class: 'note' }, 'No problem found.'));
    const nums = reportNumbers(r);
    if (nums.length) parts.push(el('dl', { class: 'numbers', id: 'preflight-numbers' }, ...nums.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])));
  }
  preflightBox.replaceChildren(...parts);
}
setInterval(() => preflight.status === 'running' && renderPreflight(), 1000);

function renderSummary(): void {
  const s = summary;
  const live = !!s && (s.state === 'running' || s.state === 'paused' || s.state === 'starting');
  summaryBox.classList.toggle('idle', !s);
  stateBadge.replaceChildren(badge(s ? s.state : 'idle'));
  runName.textContent = s ? s.runName : 'No run yet';
  cells.step.textContent = !s ? '–' : s.phase === 'sft' && s.sftStep !== null ? `SFT ${s.sftStep}/${s.sftSteps ?? '?'}` : `${s.step}${s.maxSteps ? ` / ${s.maxSteps}` : ''}`;
  cells.reward.textContent = formatNumber(s?.reward);
  cells.accuracy.textContent = s?.accuracy == null ? '–' : `${(s.accuracy * 100).toFixed(1)}%`;
  cells.kl.textContent = formatNumber(s?.kl, 4);
  cells.elapsed.textContent = formatDuration(s?.elapsed ?? null);
  cells.eta.textContent = live ? formatDuration(s?.eta ?? null) : '–';
  errorLine.textContent = s?.error ?? '';
  errorLine.hidden = !s?.error;
  note.textContent = s?.attached && live ? 'Re-attached through the run directory: Stop works, pause/resume need the window that started the run.' : '';
  note.hidden = !note.textContent;
  startBtn.setDisabled(!trusted || live || invalid.size > 0);
  renderPreflight();
  pauseBtn.setDisabled(!s || s.state !== 'running' || s.attached);
  resumeBtn.setDisabled(!trusted || !s || s.state !== 'paused' || s.attached);
  stopBtn.setDisabled(!live);
  document.body.dataset.state = s?.state ?? 'idle';
}

// --- Settings form -----------------------------------------------------------------------------------
let changeTimer: ReturnType<typeof setTimeout> | null = null;
function valuesChanged(): void {
  if (changeTimer) clearTimeout(changeTimer);
  changeTimer = setTimeout(() => send({ type: 'valuesChanged', values }), 250);
  renderSummary();
}

function makeField(spec: SettingSpec): FieldHandle {
  const id = `set-${spec.key}`;
  const title = spec.help;
  const label = spec.key;
  const set = (v: SettingValues[string]) => {
    const err = validateValue(spec, v);
    fields.get(spec.key)?.setInvalid(err);
    if (err) invalid.add(spec.key);
    else {
      invalid.delete(spec.key);
      values[spec.key] = v;
    }
    valuesChanged();
  };
  if (spec.type === 'bool') return checkbox(label, values[spec.key] === true, (c) => set(c), { id, title });
  if (spec.choices) {
    // an empty choice (fsdp's "": off) is named, not a blank row
    return dropdown(label, spec.choices.map((c) => ({ value: c, label: c === '' ? '(off)' : c })), String(values[spec.key]), (v) => set(v), { id, title });
  }
  return textField(label, formatFieldValue(values[spec.key] ?? null), (t) => set(parseFieldText(spec, t)), { id, title, numeric: spec.type !== 'str' });
}

function renderForm(): void {
  fields.clear();
  invalid.clear();
  const presetField = dropdown('preset', PRESETS.map((p) => ({ value: p.id, label: p.label })), matchingPreset(), (id) => {
    const p = PRESETS.find((x) => x.id === id);
    if (!p) return;
    values = presetValues(p, schema);
    syncFields();
    valuesChanged();
  }, { id: 'preset', title: 'Start from a preset; the embedded default is what `grpo train` runs by itself' });
  const main = schema.filter((s) => MAIN_KEYS.includes(s.key)).sort((a, b) => MAIN_KEYS.indexOf(a.key) - MAIN_KEYS.indexOf(b.key));
  const rest = schema.filter((s) => !MAIN_KEYS.includes(s.key));
  const make = (s: SettingSpec) => {
    const f = makeField(s);
    fields.set(s.key, f);
    return el('div', { class: 'field' }, f.element);
  };
  const reset = button('Reset to defaults', () => send({ type: 'resetDefaults' }), { secondary: true, id: 'reset-defaults' });
  form.replaceChildren(
    el('div', { class: 'field' }, presetField.element),
    ...main.map(make),
    section('More settings', false, ...rest.map(make)),
    el('div', { class: 'buttons' }, reset.element),
  );
}

function matchingPreset(): string {
  const same = (p: (typeof PRESETS)[number]) => {
    const v = presetValues(p, schema);
    return schema.every((s) => v[s.key] === values[s.key]);
  };
  return PRESETS.find(same)?.id ?? PRESETS[0].id;
}

function syncFields(): void {
  for (const s of schema) {
    const f = fields.get(s.key);
    if (f) f.setValue(s.type === 'bool' ? String(values[s.key] === true) : formatFieldValue(values[s.key] ?? null));
    f?.setInvalid(null);
  }
  invalid.clear();
}

function handle(m: HostToPanel): void {
  switch (m.type) {
    case 'init':
      schema = m.schema;
      values = { ...m.values };
      trusted = m.trusted;
      summary = m.summary;
      preflight = m.preflight;
      trustBanner.hidden = trusted;
      renderForm();
      break;
    case 'values':
      values = { ...m.values };
      syncFields();
      break;
    case 'summary':
      summary = m.summary;
      break;
    case 'preflight':
      preflight = m.preflight;
      break;
  }
  renderSummary();
}

listen(isHostToPanel, handle, (v) => console.error('training view: dropped an invalid message', describe(v)));
trustBanner.hidden = true;
renderSummary();
send({ type: 'ready' });
