/**
 * Finding the ONNX export of a checkpoint (`checkpoints/step_N/onnx/`, written by the trainer for models
 * of ≤ 50M parameters, or by `python -m grpo export-onnx`). Node only, no `vscode`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { listCheckpoints, readSmallFile } from '../../rundir/runDir';

export interface OnnxManifest {
  format: 1;
  step: number | null;
  checkpoint: string | null;
  policy: string;
  reference: string;
  tokenizer: string;
  [key: string]: unknown;
}

export interface OnnxExport {
  dir: string;
  manifest: OnnxManifest;
  policy: string;
  reference: string;
  tokenizer: string;
}

export class ExportError extends Error {}

/** Reads and checks `DIR/manifest.json` and the files it names. */
export function readExport(dir: string): OnnxExport {
  const file = path.join(dir, 'manifest.json');
  let m: unknown;
  let text: string | null;
  try {
    text = readSmallFile(file); // a regular file of bounded size: exports live in (untrusted) run directories
    m = text === null ? null : JSON.parse(text);
  } catch (e) {
    throw new ExportError(`${file} is unreadable: ${(e as Error).message}`);
  }
  if (text === null) throw new ExportError(`${dir} has no manifest.json (not an ONNX export)`);
  const o = m as Record<string, unknown>;
  if (typeof o !== 'object' || o === null || o.format !== 1) throw new ExportError(`${file}: unsupported export format ${JSON.stringify(o?.format)} (expected 1)`);
  const files: Record<string, string> = {};
  for (const k of ['policy', 'reference', 'tokenizer'] as const) {
    if (typeof o[k] !== 'string') throw new ExportError(`${file}: '${k}' must name a file`);
    const f = path.resolve(dir, o[k] as string);
    const rel = path.relative(dir, f);
    if (rel.startsWith('..') || path.isAbsolute(rel)) throw new ExportError(`${file}: '${k}' must name a file inside ${dir}`);
    if (!fs.existsSync(f)) throw new ExportError(`${file} names ${o[k]}, which is missing`);
    files[k] = f;
  }
  return { dir, manifest: o as unknown as OnnxManifest, policy: files.policy, reference: files.reference, tokenizer: files.tokenizer };
}

const isCheckpointDir = (d: string) => /^step_\d+$/.test(path.basename(d)) && fs.existsSync(path.join(d, 'config.json'));

/**
 * The export to score with for `target`: an export directory itself, a checkpoint (its `onnx/`), or a
 * run directory (its latest checkpoint's `onnx/`). Throws an ExportError that says what is missing and
 * how to make it.
 */
export function findExport(target: string): OnnxExport {
  if (fs.existsSync(path.join(target, 'manifest.json'))) return readExport(target);
  if (isCheckpointDir(target)) {
    const dir = path.join(target, 'onnx');
    if (!fs.existsSync(dir)) throw new ExportError(noExportMessage(target));
    return readExport(dir);
  }
  const cps = listCheckpoints(target);
  if (cps.length === 0) {
    const isRun = fs.existsSync(path.join(target, 'status.json')) || fs.existsSync(path.join(target, 'config.json'));
    throw new ExportError(isRun ? `run ${path.basename(target)} has no checkpoint yet (the first is written when SFT ends)` : `${target} is not a run directory or a checkpoint`);
  }
  const latest = cps[cps.length - 1];
  const dir = path.join(latest.path, 'onnx');
  if (!fs.existsSync(dir)) throw new ExportError(noExportMessage(latest.path));
  return readExport(dir);
}

function noExportMessage(checkpoint: string): string {
  return `checkpoint ${path.basename(checkpoint)} has no ONNX export (checkpoints of models over 50M parameters, or written before ONNX export existed, are not exported automatically). Make one with: python -m grpo export-onnx --checkpoint ${checkpoint} --out ${path.join(checkpoint, 'onnx')}`;
}
