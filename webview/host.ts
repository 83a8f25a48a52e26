/**
 * The webview's side of the host channel: the one `acquireVsCodeApi()` handle, typed posting, incoming
 * messages validated with the protocol's guards (anything else is reported to the host and dropped),
 * and a `ready` sent once the listener is in place (the host posts nothing before it).
 */
interface VsCodeApi {
  postMessage(msg: unknown): void;
  getState(): unknown;
  setState(state: unknown): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const api: VsCodeApi = acquireVsCodeApi();

export function post<T>(msg: T): void {
  api.postMessage(msg);
}
export function getState(): unknown {
  return api.getState();
}
export function setState(state: unknown): void {
  api.setState(state);
}

/** Listens for host messages that pass `guard`; invalid ones are reported back through `onInvalid`. */
export function listen<T>(guard: (v: unknown) => v is T, onMessage: (m: T) => void, onInvalid: (v: unknown) => void): void {
  window.addEventListener('message', (e: MessageEvent) => {
    if (guard(e.data)) onMessage(e.data);
    else onInvalid(e.data);
  });
}

export function describe(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 200 ? s.slice(0, 200) + '…' : s;
}
