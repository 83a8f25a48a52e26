/**
 * Scoring text against the policy and the reference with onnxruntime-node, inside the extension host:
 * no Python, no GPU. Each exported model takes `input_ids` int64 [1, seq] and returns `logp` and
 * `entropy` float32 [1, seq−1] (log-prob of token t+1 given tokens ≤ t, and the entropy of that
 * next-token distribution; log-softmax is inside the graph). One InferenceSession per model file, loaded
 * once and cached. No `vscode` import.
 */
import * as fs from 'node:fs';
import type * as Ort from 'onnxruntime-node';
import type { ScoreResult } from '../../shared/records';
import { k3 } from '../../shared/values';
import { LIMITS, readSmallFile } from '../../rundir/runDir';
import { readExport, type OnnxExport } from './exports';
import { HfTokenizer } from './hfTokenizer';
import { charTokenizer, checkTokenizerDescription, scoringInput, TokenizeError, type TextTokenizer, type TokenizerDescription } from './tokenizer';

// Loaded lazily: the native binding costs ~100 ms and is only needed when a document is scored.
let ort: typeof Ort | undefined;
function runtime(): typeof Ort {
  if (!ort) {
    try {
      ort = require('onnxruntime-node') as typeof Ort;
    } catch (e) {
      throw new Error(`onnxruntime-node cannot be loaded (${(e as Error).message.split('\n')[0]}), so documents cannot be scored in the editor; "GRPO: Sample Group" and "Compare to Reference" still work through the trainer`);
    }
  }
  return ort;
}

export interface TokenScores extends ScoreResult {
  /** The ids scored (text tokens only) and the whole input's length, for reports. */
  ids: number[];
  inputLength: number;
}

const sessions = new Map<string, Promise<Ort.InferenceSession>>();

/** The cached session for one .onnx file (keyed by path and mtime, so a re-export is picked up). */
function session(file: string): Promise<Ort.InferenceSession> {
  const key = `${file}:${fs.statSync(file).mtimeMs}`;
  let s = sessions.get(key);
  if (!s) {
    // Runs of one process do not overlap (measured: two at once take twice as long), so each run gets
    // every core (onnxruntime's default intra-op pool) and policy and reference go one after the other.
    // No spinning: onnxruntime's pool threads busy-wait between operators by default, and in Node the run
    // happens on a libuv worker that then competes with them for the cores; on 2 cores a 1,000-token
    // forward took 40-50 ms spinning and 28 ms without (bench/inspect).
    s = runtime().InferenceSession.create(file, {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    });
    s.catch(() => sessions.delete(key));
    sessions.set(key, s);
  }
  return s;
}

export class OnnxScorer {
  private constructor(readonly exp: OnnxExport, readonly tokenizer: TokenizerDescription, readonly text: TextTokenizer, private readonly policy: Ort.InferenceSession, private readonly reference: Ort.InferenceSession) {}

  static async load(exp: OnnxExport | string): Promise<OnnxScorer> {
    const e = typeof exp === 'string' ? readExport(exp) : exp;
    let desc: unknown;
    try {
      const text = readSmallFile(e.tokenizer, LIMITS.tokenizerFile); // regular and bounded: run directories are untrusted
      if (text === null) throw new Error('missing');
      desc = JSON.parse(text);
    } catch (err) {
      throw new TokenizeError(`${e.tokenizer} is unreadable: ${(err as Error).message}`);
    }
    const tok = checkTokenizerDescription(desc, e.tokenizer);
    const text = tok.kind === 'hf' ? HfTokenizer.load(tok, e.dir) : charTokenizer(tok);
    const [p, r] = await Promise.all([session(e.policy), session(e.reference)]);
    for (const [s, f] of [[p, e.policy], [r, e.reference]] as const) {
      if (!s.inputNames.includes('input_ids') || !s.outputNames.includes('logp') || !s.outputNames.includes('entropy')) {
        throw new Error(`${f}: expected input 'input_ids' and outputs 'logp', 'entropy'; it has inputs ${s.inputNames.join(', ')} and outputs ${s.outputNames.join(', ')}`);
      }
    }
    return new OnnxScorer(e, tok, text, p, r);
  }

  get step(): number | null {
    return this.exp.manifest.step;
  }

  private async forward(s: Ort.InferenceSession, ids: number[]): Promise<{ logp: Float32Array; entropy: Float32Array }> {
    const O = runtime();
    const input = new O.Tensor('int64', BigInt64Array.from(ids, (x) => BigInt(x)), [1, ids.length]);
    const out = await s.run({ input_ids: input });
    return { logp: out.logp.data as Float32Array, entropy: out.entropy.data as Float32Array };
  }

  /**
   * Per-token numbers for `text` as a continuation of `prompt` (default: none, so the whole text is
   * scored after BOS; without a BOS the first token has no context and is not scored). `tokens` are
   * the text each token covers (a byte-level token inside a character shows that whole character).
   */
  async score(text: string, prompt = ''): Promise<TokenScores> {
    const inp = scoringInput(this.tokenizer, this.text, text, prompt);
    const first = Math.max(inp.textStart, 1); // a token needs at least one token before it
    const skip = first - inp.textStart;
    if (inp.ids.length - first <= 0) throw new TokenizeError('the text is too short to score (one token and no prompt or BOS before it)');
    const p = await this.forward(this.policy, inp.ids);
    const r = await this.forward(this.reference, inp.ids);
    const n = inp.ids.length - first;
    const res: TokenScores = {
      tokens: [], offsets: inp.offsets.slice(skip), logp: new Array(n), ref_logp: new Array(n), kl: new Array(n), entropy: new Array(n),
      sequence_kl: 0, sum_logp: 0, sum_ref_logp: 0, step: this.step, ids: inp.ids.slice(first), inputLength: inp.ids.length,
    };
    for (let i = 0; i < n; i++) {
      const at = first + i - 1; // logp[at] scores token at+1
      const lp = p.logp[at];
      const rl = r.logp[at];
      res.logp[i] = lp;
      res.ref_logp[i] = rl;
      res.entropy[i] = p.entropy[at];
      res.kl[i] = k3(lp, rl);
      res.sum_logp += lp;
      res.sum_ref_logp += rl;
      res.sequence_kl += res.kl[i];
      const [s, e] = res.offsets[i];
      res.tokens.push(text.slice(s, e));
    }
    res.sequence_kl /= n;
    return res;
  }
}

/** Scorers by export directory: one load per export for the life of the extension host. */
const scorers = new Map<string, Promise<OnnxScorer>>();
export function scorerFor(exp: OnnxExport): Promise<OnnxScorer> {
  let s = scorers.get(exp.dir);
  if (!s) {
    s = OnnxScorer.load(exp);
    s.catch(() => scorers.delete(exp.dir));
    scorers.set(exp.dir, s);
  }
  return s;
}
