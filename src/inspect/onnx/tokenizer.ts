/**
 * The exported tokenizer description (`onnx/tokenizer.json`, written by `python -m grpo export-onnx`):
 * enough to tokenize exactly as the trainer does, in the extension host, with no Python. Pure; no
 * `vscode`, no onnxruntime.
 *
 * Two kinds:
 *  - `"char"` (the built-in model): one token per character (Unicode code point), looked up in `vocab`,
 *    except that the special tokens' strings (`<eos>`, `<pad>`, `<unk>`, a BOS) are matched whole where
 *    they occur, as the trainer's Hugging Face tokenizer matches its added tokens. A character with no
 *    entry is an error that names it (the trainer would have mapped it to `<unk>`, which says nothing
 *    about the text).
 *  - `"hf"` (any Hugging Face fast tokenizer): `files` names copies of the checkpoint's own
 *    `tokenizer.json` and `tokenizer_config.json`, read by `@huggingface/tokenizers` (./hfTokenizer.ts).
 */

export interface DescriptionBase {
  unk_token_id: number | null;
  bos_token_id: number | null;
  eos_token_id: number | null;
  pad_token_id: number | null;
  add_bos: boolean;
  prompt_template: string;
  max_length: number;
}

export interface CharDescription extends DescriptionBase {
  kind: 'char';
  vocab: Record<string, number>;
  /** The special tokens' strings (matched whole in text); derived from the *_token_id fields if absent. */
  special_tokens?: string[];
}

export interface HfDescription extends DescriptionBase {
  kind: 'hf';
  /** Paths relative to the export folder. */
  files: { tokenizer: string; config: string };
  /** The tokenizer's Jinja chat template, if it has one. */
  chat_template: string | null;
}

export type TokenizerDescription = CharDescription | HfDescription;

/** Turns text into the trainer's token ids (no BOS, special-token strings matched), with UTF-16 offsets. */
export interface TextTokenizer {
  encode(text: string, what?: string): Encoded;
}

export class TokenizeError extends Error {}

const isId = (v: unknown) => v === null || v === undefined || (typeof v === 'number' && Number.isInteger(v) && v >= 0);

/** Validates a parsed tokenizer.json; throws a TokenizeError naming the first problem. */
export function checkTokenizerDescription(v: unknown, file = 'tokenizer.json'): TokenizerDescription {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TokenizeError(`${file} is not a JSON object`);
  const o = v as Record<string, unknown>;
  if (o.kind !== 'char' && o.kind !== 'hf') throw new TokenizeError(`${file}: tokenizer kind ${JSON.stringify(o.kind)} is not supported (expected "char" or "hf"; re-export with this version of the trainer)`);
  if (o.kind === 'char') {
    if (typeof o.vocab !== 'object' || o.vocab === null || Array.isArray(o.vocab)) throw new TokenizeError(`${file}: 'vocab' must be an object of token → id`);
    for (const [tok, id] of Object.entries(o.vocab)) if (!(typeof id === 'number' && Number.isInteger(id) && id >= 0)) throw new TokenizeError(`${file}: vocab entry ${JSON.stringify(tok)} has no integer id`);
  } else {
    const f = o.files as Record<string, unknown> | undefined;
    if (typeof f !== 'object' || f === null || typeof f.tokenizer !== 'string' || typeof f.config !== 'string') throw new TokenizeError(`${file}: 'files' must name the Hugging Face 'tokenizer' and 'config' files`);
    if (o.chat_template !== null && o.chat_template !== undefined && typeof o.chat_template !== 'string') throw new TokenizeError(`${file}: 'chat_template' must be a string or null`);
  }
  for (const k of ['unk_token_id', 'bos_token_id', 'eos_token_id', 'pad_token_id']) if (!isId(o[k])) throw new TokenizeError(`${file}: '${k}' must be an integer id or null`);
  if (typeof o.add_bos !== 'boolean') throw new TokenizeError(`${file}: 'add_bos' must be true or false`);
  if (typeof o.prompt_template !== 'string' || !o.prompt_template.includes('{question}')) throw new TokenizeError(`${file}: 'prompt_template' must be a string containing {question}`);
  if (!(typeof o.max_length === 'number' && Number.isInteger(o.max_length) && o.max_length > 1)) throw new TokenizeError(`${file}: 'max_length' must be an integer > 1`);
  if (o.add_bos && (o.bos_token_id === null || o.bos_token_id === undefined)) throw new TokenizeError(`${file}: 'add_bos' is set but there is no 'bos_token_id'`);
  const base: DescriptionBase = {
    unk_token_id: (o.unk_token_id as number | null | undefined) ?? null,
    bos_token_id: (o.bos_token_id as number | null | undefined) ?? null,
    eos_token_id: (o.eos_token_id as number | null | undefined) ?? null,
    pad_token_id: (o.pad_token_id as number | null | undefined) ?? null,
    add_bos: o.add_bos,
    prompt_template: o.prompt_template,
    max_length: o.max_length,
  };
  if (o.kind === 'hf') {
    const f = o.files as { tokenizer: string; config: string };
    return { kind: 'hf', ...base, files: { tokenizer: f.tokenizer, config: f.config }, chat_template: (o.chat_template as string | null | undefined) ?? null };
  }
  return {
    kind: 'char', ...base,
    vocab: o.vocab as Record<string, number>,
    special_tokens: Array.isArray(o.special_tokens) ? o.special_tokens.filter((t): t is string => typeof t === 'string' && Object.prototype.hasOwnProperty.call(o.vocab, t)) : undefined,
  };
}

/** The prompt the trainer builds for a question without a chat template (`{question}` replaced). */
export function promptFor(desc: DescriptionBase, question: string): string {
  return desc.prompt_template.split('{question}').join(question);
}

export interface Encoded {
  ids: number[];
  /** [start, end) in UTF-16 code units of the input string, one per id. */
  offsets: [number, number][];
}

export const describeChar = (ch: string) => (ch === '\t' ? '\\t' : ch === '\r' ? '\\r' : /\s/.test(ch) || ch.codePointAt(0)! < 32 ? `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}` : ch);

/** The multi-character strings of the special tokens, longest first. */
function specialStrings(desc: CharDescription): string[] {
  if (desc.special_tokens) return desc.special_tokens.filter((t) => [...t].length > 1).sort((a, b) => b.length - a.length);
  const byId = new Map(Object.entries(desc.vocab).map(([t, id]) => [id, t]));
  const out = new Set<string>();
  for (const id of [desc.unk_token_id, desc.bos_token_id, desc.eos_token_id, desc.pad_token_id]) {
    const t = id === null ? undefined : byId.get(id);
    if (t && [...t].length > 1) out.add(t);
  }
  return [...out].sort((a, b) => b.length - a.length);
}

/** Tokenizes text (no BOS); throws a TokenizeError naming every character outside the vocabulary. */
export function encode(desc: CharDescription, text: string, what = 'the text'): Encoded {
  const ids: number[] = [];
  const offsets: [number, number][] = [];
  let skip = 0; // code units of a matched special token still to pass over
  const unknown = new Map<string, number>(); // char → first offset
  const specials = specialStrings(desc);
  let pos = 0;
  outer: for (const ch of text) {
    if (skip > 0) {
      skip -= ch.length;
      pos += ch.length;
      continue;
    }
    if (ch === '<' || specials.some((s) => s[0] === ch)) {
      for (const sp of specials) {
        if (text.startsWith(sp, pos)) {
          ids.push(desc.vocab[sp]);
          offsets.push([pos, pos + sp.length]);
          skip = sp.length - ch.length;
          pos += ch.length;
          continue outer;
        }
      }
    }
    const id = Object.prototype.hasOwnProperty.call(desc.vocab, ch) ? desc.vocab[ch] : undefined;
    if (id === undefined) {
      if (!unknown.has(ch)) unknown.set(ch, pos);
    } else {
      ids.push(id);
      offsets.push([pos, pos + ch.length]);
    }
    pos += ch.length;
  }
  if (unknown.size) throw unknownCharacters(what, unknown);
  return { ids, offsets };
}

/** The error for characters the model cannot represent (`unknown`: character → first offset). */
export function unknownCharacters(what: string, unknown: Map<string, number>): TokenizeError {
  const list = [...unknown.keys()].slice(0, 20).map((c) => `'${describeChar(c)}'`).join(', ');
  const more = unknown.size > 20 ? ` and ${unknown.size - 20} more` : '';
  const first = [...unknown.values()][0];
  return new TokenizeError(`${what} has ${unknown.size} character${unknown.size > 1 ? 's' : ''} outside the model's vocabulary: ${list}${more} (first at offset ${first})`);
}

/** The "char" kind as a TextTokenizer. */
export function charTokenizer(desc: CharDescription): TextTokenizer {
  return { encode: (text, what) => encode(desc, text, what) };
}

export interface ScoringInput {
  /** [BOS?] + prompt + text. */
  ids: number[];
  /** Index in `ids` of the first text token. */
  textStart: number;
  /** Offsets (into the text) of the text tokens. */
  offsets: [number, number][];
}

/**
 * The full sequence for scoring `text` as a continuation of `prompt`. Throws a TokenizeError when a
 * character is outside the vocabulary or the whole does not fit the model's context.
 */
export function scoringInput(desc: DescriptionBase, tok: TextTokenizer, text: string, prompt = ''): ScoringInput {
  const p = tok.encode(prompt, 'the prompt');
  const t = tok.encode(text, 'the text');
  const head = desc.add_bos && desc.bos_token_id !== null ? [desc.bos_token_id] : [];
  const ids = [...head, ...p.ids, ...t.ids];
  if (ids.length > desc.max_length) {
    throw new TokenizeError(`the ${prompt ? 'prompt and text are' : 'text is'} ${ids.length} tokens long; the model's context is ${desc.max_length} tokens`);
  }
  if (t.ids.length === 0) throw new TokenizeError('there is no text to score');
  return { ids, textStart: head.length + p.ids.length, offsets: t.offsets };
}
