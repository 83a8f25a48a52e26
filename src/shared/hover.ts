/**
 * What a hover on one token says, in the editor (Markdown) and in the webviews' tooltips (plain text).
 * Pure; unit-tested. Every hover names the k3 KL ("KL") with its value.
 */
import { fmt, visibleToken } from './values';

export interface TokenFacts {
  token: string;
  index: number;
  count: number;
  logp: number;
  refLogp: number;
  kl: number;
  /** π_θ/π_old (only for sampled or logged groups: π_old is the policy that sampled them). */
  ratio?: number | null;
  /** π_θ/π_ref (a re-scored edit: the trainer's own per-token ratio to the reference). */
  refRatio?: number | null;
  oldLogp?: number | null;
  advantage?: number | null;
  entropy?: number | null;
  /** Process supervision: the reasoning step this token belongs to and its reward. */
  step?: { index: number; reward: number | null } | null;
}

/** Label/value pairs in display order; values already formatted. */
export function factRows(f: TokenFacts): [string, string][] {
  const rows: [string, string][] = [
    ['KL (k3, to the reference)', fmt(f.kl, 5)],
    ['log π_θ (policy)', fmt(f.logp)],
    ['log π_ref (reference)', fmt(f.refLogp)],
    ['log π_θ − log π_ref', fmt(f.logp - f.refLogp)],
  ];
  if (f.refRatio !== undefined && f.refRatio !== null) rows.push(['ratio π_θ/π_ref', fmt(f.refRatio)]);
  if (f.oldLogp !== undefined && f.oldLogp !== null) rows.push(['log π_old (sampler)', fmt(f.oldLogp)]);
  rows.push(['ratio π_θ/π_old', f.ratio === undefined || f.ratio === null ? 'n/a (not sampled by the trainer)' : fmt(f.ratio)]);
  rows.push(['advantage Â', f.advantage === undefined || f.advantage === null ? 'n/a (not from a scored group)' : fmt(f.advantage)]);
  if (f.entropy !== undefined && f.entropy !== null) rows.push(['entropy', fmt(f.entropy)]);
  if (f.step) rows.push([`reasoning step ${f.step.index + 1}`, f.step.reward === null ? 'after the last step' : `reward ${fmt(f.step.reward, 3)}`]);
  return rows;
}

const mdEscape = (s: string) => s.replace(/[\\`*_|<>[\]]/g, (c) => `\\${c}`);

/** The editor hover: a heading with the token, then a two-column table. */
export function hoverMarkdown(f: TokenFacts, source: string): string {
  const head = `**GRPO token ${f.index + 1}/${f.count}** \`${visibleToken(f.token).replace(/`/g, 'ˋ')}\``;
  const table = ['| | |', '|---|---:|', ...factRows(f).map(([k, v]) => `| ${mdEscape(k)} | ${mdEscape(v)} |`)].join('\n');
  return `${head}\n\n${table}\n\n_${mdEscape(source)}_`;
}

/** The webview tooltip: plain lines. */
export function tooltipText(f: TokenFacts, where: string): string {
  return [`'${visibleToken(f.token)}' — token ${f.index + 1}/${f.count} of ${where}`, ...factRows(f).map(([k, v]) => `${k}: ${v}`)].join('\n');
}
