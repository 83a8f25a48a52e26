/**
 * Kind "hf" of the exported tokenizer description: the checkpoint's own Hugging Face `tokenizer.json` and
 * `tokenizer_config.json` (copied into the export by `python -m grpo export-onnx`), run by
 * `@huggingface/tokenizers` (pure JS), and its chat template rendered by `@huggingface/jinja`. No `vscode`.
 *
 * The library gives token ids but no character offsets, so offsets come from decoding prefixes
 * (`tokenOffsets`): the Rust tokenizers' rule — a token spans the characters holding its first and last
 * bytes — recovered in UTF-16 code units, so byte-level tokens that split a character share it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { TokenizeError, unknownCharacters, type Encoded, type HfDescription, type TextTokenizer } from './tokenizer';

const REPLACEMENT = '\uFFFD';

/**
 * [start, end) in UTF-16 code units of each token of `ids` in `text`, from `decode` of each prefix
 * (a prefix that ends inside a character decodes with a trailing U+FFFD). Throws a TokenizeError when the
 * tokens do not decode back to the text (a normalizing tokenizer: lower-casing, NFKC), since then no
 * token can be placed in the document.
 *
 * Decoding every whole prefix costs O(n²) (400 ms for 1,900 tokens; anchored: 7 ms), so prefixes are
 * decoded from an anchor instead, with the token before it as context (decoders treat a sequence's first token
 * specially: Metaspace drops its leading space). An anchor moves on only past a token that decodes alone
 * to exactly its text, between character boundaries; every piece is checked against the text, and a
 * mismatch starts over from whole prefixes.
 */
export function tokenOffsets(text: string, ids: readonly number[], decode: (ids: number[]) => string, window = 8): [number, number][] {
  return placeTokens(text, ids, decode, window) ?? placeTokens(text, ids, decode, 0)!;
}

/** `window` 0: whole prefixes (exact; null never returned). Otherwise anchored; null when a check fails. */
function placeTokens(text: string, ids: readonly number[], decode: (ids: number[]) => string, window: number): [number, number][] | null {
  const out: [number, number][] = [];
  let done = 0; // code units of the whole characters decoded from the tokens so far
  let anchor = 0; // first token decoded after the context
  let context: number[] = [];
  let contextText = '';
  for (let i = 0; i < ids.length; i++) {
    const full = decode([...context, ...ids.slice(anchor, i + 1)]);
    if (!full.startsWith(contextText)) return null;
    const base = anchor === 0 ? 0 : out[anchor - 1][1];
    const s = full.slice(contextText.length);
    let whole = base + s.length;
    // A prefix that ends inside a character decodes it as U+FFFD (where the text has another character).
    if (s.length > 0 && s[s.length - 1] === REPLACEMENT && text[whole - 1] !== REPLACEMENT) whole--;
    const partial = whole < base + s.length;
    if (whole < done || s.slice(done - base, whole - base) !== text.slice(done, whole)) {
      if (window) return null;
      throw new TokenizeError(`this tokenizer does not decode its tokens back to the text (near offset ${done}: it normalizes text), so its tokens cannot be placed in the document; a checkpoint without onnx/ is scored by the trainer instead`);
    }
    // From the first character it touches (a partial one the previous token began, or the next) to the
    // last: the character it leaves unfinished, if any.
    const startsClean = i === 0 || out[i - 1][1] === done;
    out.push([done, partial ? whole + charLength(text, whole) : whole]);
    done = whole;
    if (window && !partial && startsClean && i + 1 - anchor >= window) {
      const alone = decode([ids[i]]);
      if (alone === text.slice(out[i][0], out[i][1])) {
        anchor = i + 1;
        context = [ids[i]];
        contextText = alone;
      }
    }
  }
  if (done !== text.length) {
    if (window) return null;
    throw new TokenizeError(`this tokenizer's tokens decode to ${done} of the text's ${text.length} characters, so they cannot be placed in the document`);
  }
  return out;
}

const charLength = (text: string, at: number) => (at < text.length ? String.fromCodePoint(text.codePointAt(at)!).length : 0);

export class HfTokenizer implements TextTokenizer {
  private readonly tok: Tokenizer;
  private template: Template | null | undefined;

  constructor(readonly desc: HfDescription, tokenizerJson: object, tokenizerConfig: object) {
    try {
      this.tok = new Tokenizer(tokenizerJson, tokenizerConfig);
    } catch (e) {
      throw new TokenizeError(`the model's tokenizer.json cannot be read by @huggingface/tokenizers: ${(e as Error).message}`);
    }
  }

  /** Reads the files an export's description names (relative to the export folder `dir`). */
  static load(desc: HfDescription, dir: string): HfTokenizer {
    const read = (rel: string): object => {
      const file = path.resolve(dir, rel);
      try {
        return JSON.parse(fs.readFileSync(file, 'utf8')) as object;
      } catch (e) {
        throw new TokenizeError(`${file} is unreadable: ${(e as Error).message}`);
      }
    };
    return new HfTokenizer(desc, read(desc.files.tokenizer), read(desc.files.config));
  }

  /** Token ids → text, special tokens kept, no clean-up: the inverse of `encode` for placing tokens. */
  readonly decode = (ids: number[]): string => this.tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });

  encode(text: string, what = 'the text'): Encoded {
    if (!text) return { ids: [], offsets: [] };
    const ids = this.tok.encode(text, { add_special_tokens: false }).ids;
    const offsets = tokenOffsets(text, ids, this.decode);
    const unk = this.desc.unk_token_id;
    if (unk !== null && ids.includes(unk)) {
      const unknown = new Map<string, number>();
      ids.forEach((id, i) => {
        const [a, b] = offsets[i];
        if (id === unk && !unknown.has(text.slice(a, b))) unknown.set(text.slice(a, b), a);
      });
      throw unknownCharacters(what, unknown);
    }
    return { ids, offsets };
  }

  /**
   * The chat-formatted prompt for a question, as the trainer writes it with the chat template on
   * (`apply_chat_template(messages, add_generation_prompt=True)`); null without a template.
   */
  chatPrompt(question: string, systemPrompt = ''): string | null {
    if (this.template === undefined) this.template = this.desc.chat_template ? new Template(this.desc.chat_template) : null;
    if (!this.template) return null;
    const messages = [...(systemPrompt ? [{ role: 'system', content: systemPrompt }] : []), { role: 'user', content: question }];
    const name = (id: number | null) => (id === null ? undefined : this.tok.id_to_token(id));
    return this.template.render({ messages, add_generation_prompt: true, bos_token: name(this.desc.bos_token_id) ?? '', eos_token: name(this.desc.eos_token_id) ?? '' });
  }
}
