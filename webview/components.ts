/**
 * The webviews' small component layer. Front-end code builds its controls only through these functions,
 * so the UI toolkit behind them (@vscode/webview-ui-toolkit, archived upstream but working) can be swapped
 * for another one, or for plain elements, in this file alone.
 */
import {
  provideVSCodeDesignSystem,
  vsCodeBadge,
  vsCodeButton,
  vsCodeCheckbox,
  vsCodeDivider,
  vsCodeDropdown,
  vsCodeOption,
  vsCodeProgressRing,
  vsCodeTextField,
} from '@vscode/webview-ui-toolkit';

let registered = false;
export function registerComponents(): void {
  if (registered) return;
  registered = true;
  provideVSCodeDesignSystem().register(
    vsCodeButton(), vsCodeCheckbox(), vsCodeDropdown(), vsCodeOption(), vsCodeTextField(), vsCodeDivider(), vsCodeBadge(), vsCodeProgressRing(),
  );
}

type Attrs = Record<string, string | undefined>;

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  e.append(...children);
  return e;
}

function setAttrs(e: Element, attrs: Attrs): void {
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) e.setAttribute(k, v);
}

export interface ButtonHandle { element: HTMLElement; setDisabled(d: boolean): void }
export function button(label: string, onClick: () => void, opts: { secondary?: boolean; id?: string; title?: string } = {}): ButtonHandle {
  const b = document.createElement('vscode-button');
  setAttrs(b, { id: opts.id, title: opts.title, appearance: opts.secondary ? 'secondary' : 'primary' });
  b.textContent = label;
  b.addEventListener('click', () => {
    if (!b.hasAttribute('disabled')) onClick();
  });
  return { element: b, setDisabled: (d) => b.toggleAttribute('disabled', d) };
}

export interface FieldHandle { element: HTMLElement; value(): string; setValue(v: string): void; setDisabled(d: boolean): void; setInvalid(msg: string | null): void }

export function textField(label: string, value: string, onInput: (v: string) => void, opts: { id?: string; title?: string; numeric?: boolean } = {}): FieldHandle {
  const f = document.createElement('vscode-text-field') as HTMLElement & { value: string };
  setAttrs(f, { id: opts.id, title: opts.title, size: '12' });
  if (opts.numeric) f.setAttribute('inputmode', 'decimal');
  f.textContent = label;
  f.value = value;
  f.addEventListener('input', () => onInput(f.value));
  return fieldHandle(f);
}

export function dropdown(label: string, options: { value: string; label: string }[], value: string, onChange: (v: string) => void, opts: { id?: string; title?: string } = {}): FieldHandle {
  const wrap = el('div', { class: 'dropdown-field', title: opts.title });
  const lab = el('label', { for: opts.id }, label);
  const d = document.createElement('vscode-dropdown') as HTMLElement & { value: string };
  setAttrs(d, { id: opts.id });
  for (const o of options) {
    const opt = document.createElement('vscode-option') as HTMLElement & { value: string };
    opt.setAttribute('value', o.value);
    opt.textContent = o.label;
    d.append(opt);
  }
  d.addEventListener('change', () => onChange(d.value));
  wrap.append(lab, d);
  queueMicrotask(() => (d.value = value));
  const h = fieldHandle(d);
  return { ...h, element: wrap };
}

export function checkbox(label: string, checked: boolean, onChange: (v: boolean) => void, opts: { id?: string; title?: string } = {}): FieldHandle {
  const c = document.createElement('vscode-checkbox') as HTMLElement & { checked: boolean };
  setAttrs(c, { id: opts.id, title: opts.title });
  c.textContent = label;
  c.checked = checked;
  c.addEventListener('change', () => onChange(c.checked));
  return {
    element: c,
    value: () => String(c.checked),
    setValue: (v) => (c.checked = v === 'true'),
    setDisabled: (d) => c.toggleAttribute('disabled', d),
    setInvalid: () => undefined,
  };
}

function fieldHandle(f: HTMLElement & { value: string }): FieldHandle {
  return {
    element: f,
    value: () => f.value,
    setValue: (v) => {
      if (f.value !== v) f.value = v;
    },
    setDisabled: (d) => f.toggleAttribute('disabled', d),
    setInvalid: (msg) => {
      f.classList.toggle('invalid', msg !== null);
      f.title = msg ?? '';
    },
  };
}

export function divider(): HTMLElement {
  return document.createElement('vscode-divider');
}

export function badge(text: string): HTMLElement {
  const b = document.createElement('vscode-badge');
  b.textContent = text;
  return b;
}

export function spinner(): HTMLElement {
  return document.createElement('vscode-progress-ring');
}

/** A collapsible section (native <details>, themed in CSS). */
export function section(title: string, open: boolean, ...children: Node[]): HTMLDetailsElement {
  const d = el('details', {}, el('summary', {}, title), ...children);
  d.open = open;
  return d;
}
