import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HfTokenizer, tokenOffsets } from '../../src/inspect/onnx/hfTokenizer';
import { charTokenizer, checkTokenizerDescription, encode, promptFor, scoringInput, TokenizeError, type CharDescription, type HfDescription } from '../../src/inspect/onnx/tokenizer';

const vocab: Record<string, number> = { '<pad>': 0, '<eos>': 1, '<unk>': 2 };
for (const ch of '0123456789+-*()=#\n abc') vocab[ch] = Object.keys(vocab).length;
const desc = checkTokenizerDescription({ kind: 'char', vocab, unk_token_id: 2, bos_token_id: null, eos_token_id: 1, pad_token_id: 0, add_bos: false, prompt_template: '{question}\n', max_length: 12 }) as CharDescription;
const chars = charTokenizer(desc);

test('characters map to their ids with UTF-16 offsets', () => {
  const e = encode(desc, '1+2\n');
  assert.deepEqual(e.ids, [vocab['1'], vocab['+'], vocab['2'], vocab['\n']]);
  assert.deepEqual(e.offsets, [[0, 1], [1, 2], [2, 3], [3, 4]]);
});

test("a special token's string is one token, as the trainer's tokenizer matches added tokens", () => {
  const withLt = checkTokenizerDescription({ ...desc, vocab: { ...vocab, '<': 30, e: 31, o: 32, s: 33, '>': 34 } }) as CharDescription;
  const e = encode(withLt, '1<eos><e');
  assert.deepEqual(e.ids, [vocab['1'], 1, 30, 31]);
  assert.deepEqual(e.offsets, [[0, 1], [1, 6], [6, 7], [7, 8]]);
  assert.throws(() => encode(desc, '<x'), /'<', 'x'/);
});

test('characters outside the vocabulary are named, each once, with the first offset', () => {
  assert.throws(() => encode(desc, '1+é+é\t2'), (e: Error) => e instanceof TokenizeError && /2 characters outside the model's vocabulary: 'é', '\\t' \(first at offset 2\)/.test(e.message));
  assert.throws(() => encode(desc, 'a😀'), /'😀'/, 'astral characters are one character');
});

test('the prompt is the template with the question; scoring input puts the text after the prompt', () => {
  assert.equal(promptFor(desc, '1+2'), '1+2\n');
  const s = scoringInput(desc, chars, '3#', '1+2\n');
  assert.equal(s.textStart, 4);
  assert.deepEqual(s.ids.slice(4), [vocab['3'], vocab['#']]);
  assert.deepEqual(s.offsets, [[0, 1], [1, 2]]);
});

test('a BOS comes first when the description says so', () => {
  const withBos: CharDescription = { ...desc, add_bos: true, bos_token_id: 1 };
  const s = scoringInput(withBos, charTokenizer(withBos), 'ab');
  assert.deepEqual(s.ids, [1, vocab.a, vocab.b]);
  assert.equal(s.textStart, 1);
});

test('too long for the context is an error that gives both lengths', () => {
  assert.throws(() => scoringInput(desc, chars, '0123456789', 'abc'), /13 tokens long; the model's context is 12 tokens/);
  assert.doesNotThrow(() => scoringInput(desc, chars, '0123456789', 'a\n'));
  assert.throws(() => scoringInput(desc, chars, ''), /no text to score/);
});

test('a malformed description is rejected with the field named', () => {
  assert.throws(() => checkTokenizerDescription({ ...desc, kind: 'sentencepiece' }), /tokenizer kind "sentencepiece" is not supported/);
  assert.throws(() => checkTokenizerDescription({ ...desc, kind: 'hf' }), /'files' must name/);
  assert.throws(() => checkTokenizerDescription({ ...desc, kind: 'hf', files: { tokenizer: 'a', config: 'b' }, chat_template: 3 }), /chat_template/);
  assert.throws(() => checkTokenizerDescription({ ...desc, prompt_template: 'Q: ' }), /prompt_template/);
  assert.throws(() => checkTokenizerDescription({ ...desc, vocab: { a: 'x' } }), /vocab entry "a"/);
  assert.throws(() => checkTokenizerDescription({ ...desc, add_bos: true, bos_token_id: null }), /no 'bos_token_id'/);
  assert.throws(() => checkTokenizerDescription([]), /not a JSON object/);
});

// --- kind "hf": a real byte-level BPE tokenizer (GPT-2's byte alphabet) run by @huggingface/tokenizers ----
/** GPT-2's byte → printable character table (the ByteLevel pre-tokenizer's alphabet). */
function byteAlphabet(): string[] {
  const keep = [...Array(256).keys()].filter((b) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255));
  let n = 0;
  return [...Array(256).keys()].map((b) => String.fromCodePoint(keep.includes(b) ? b : 256 + n++));
}
const alphabet = byteAlphabet();
const bl = (s: string) => [...Buffer.from(s, 'utf8')].map((b) => alphabet[b]).join('');
const merges: [string, string][] = [['Ġ', 'w'], ['Ġw', 'o'], [bl('é')[0], bl('é')[1]], ['o', 'k']];
const bpeVocab: Record<string, number> = {};
alphabet.forEach((c) => (bpeVocab[c] = Object.keys(bpeVocab).length));
for (const [a, b] of merges) bpeVocab[a + b] = Object.keys(bpeVocab).length;
const IM_END = Object.keys(bpeVocab).length;
const tokenizerJson = {
  version: '1.0', truncation: null, padding: null, normalizer: null,
  added_tokens: [{ id: IM_END, content: '<|im_end|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
  pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
  post_processor: null,
  decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
  model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: bpeVocab, merges },
};
const hfDesc: HfDescription = {
  kind: 'hf', files: { tokenizer: 'hf/tokenizer.json', config: 'hf/tokenizer_config.json' }, unk_token_id: null, bos_token_id: null, eos_token_id: IM_END, pad_token_id: null,
  add_bos: false, prompt_template: '{question}\n', max_length: 64,
  chat_template: "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + eos_token + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
};
const bpe = new HfTokenizer(hfDesc, tokenizerJson, { eos_token: '<|im_end|>' });

test('hf: byte-level tokens get UTF-16 offsets; tokens inside a character share it, as the Rust tokenizers report', () => {
  const text = 'é wok\n😀<|im_end|>∑';
  const e = bpe.encode(text);
  const pieces = e.offsets.map(([a, b]) => text.slice(a, b));
  // é is one merged token; " wo" a merge; 😀 (4 bytes) and ∑ (3 bytes) are one token per byte
  assert.deepEqual(pieces, ['é', ' wo', 'k', '\n', '😀', '😀', '😀', '😀', '<|im_end|>', '∑', '∑', '∑']);
  assert.deepEqual(e.offsets.slice(4, 8), [[6, 8], [6, 8], [6, 8], [6, 8]], 'the astral character is 2 UTF-16 units');
  assert.equal(e.ids[8], IM_END, "a special token's string is one token");
  assert.equal(e.ids.length, 12);
  assert.deepEqual(bpe.encode(''), { ids: [], offsets: [] });
});

test('hf: a token that ends one character and begins the next spans both', () => {
  // decode(prefix) by hand: token 0 = "a" + the first byte of é, token 1 = the second byte of é
  const decoded = ['a\uFFFD', 'aé'];
  assert.deepEqual(tokenOffsets('aé', [0, 1], (ids) => decoded[ids.length - 1]), [[0, 2], [1, 2]]);
  assert.throws(() => tokenOffsets('Abc', [0], () => 'abc'), /does not decode its tokens back to the text/);
});

test('hf: offsets decoded from anchors equal those from whole prefixes, on a long mixed text', () => {
  const text = Array.from({ length: 30 }, (_, i) => `é wok ${i}\n😀∑<|im_end|> wo`).join('');
  const ids = bpe.encode(text).ids;
  const exact = tokenOffsets(text, ids, bpe.decode, 0);
  for (const w of [1, 2, 5, 8]) assert.deepEqual(tokenOffsets(text, ids, bpe.decode, w), exact, `window ${w}`);
  assert.deepEqual(bpe.encode(text).offsets, exact);
});

test('hf: the scoring input is prompt tokens then text tokens, each tokenized alone (as the trainer does)', () => {
  const s = scoringInput(hfDesc, bpe, 'ok', ' wo');
  assert.equal(s.textStart, 1);
  assert.deepEqual(s.ids, [bpeVocab['Ġwo'], bpeVocab.ok]);
  assert.deepEqual(s.offsets, [[0, 2]]);
});

test('hf: the chat template renders the prompt the trainer builds', () => {
  assert.equal(bpe.chatPrompt('1+1?'), '<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n');
  assert.equal(bpe.chatPrompt('q', 'Be brief.'), '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n');
});
