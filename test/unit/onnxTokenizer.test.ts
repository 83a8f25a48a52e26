import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkTokenizerDescription, encode, promptFor, scoringInput, TokenizeError, type TokenizerDescription } from '../../src/onnx/tokenizer';

const vocab: Record<string, number> = { '<pad>': 0, '<eos>': 1, '<unk>': 2 };
for (const ch of '0123456789+-*()=#\n abc') vocab[ch] = Object.keys(vocab).length;
const desc = checkTokenizerDescription({ kind: 'char', vocab, unk_token_id: 2, bos_token_id: null, eos_token_id: 1, pad_token_id: 0, add_bos: false, prompt_template: '{question}\n', max_length: 12 });

test('characters map to their ids with UTF-16 offsets', () => {
  const e = encode(desc, '1+2\n');
  assert.deepEqual(e.ids, [vocab['1'], vocab['+'], vocab['2'], vocab['\n']]);
  assert.deepEqual(e.offsets, [[0, 1], [1, 2], [2, 3], [3, 4]]);
});

test("a special token's string is one token, as the trainer's tokenizer matches added tokens", () => {
  const withLt = checkTokenizerDescription({ ...desc, vocab: { ...vocab, '<': 30, e: 31, o: 32, s: 33, '>': 34 } });
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
  const s = scoringInput(desc, '3#', '1+2\n');
  assert.equal(s.textStart, 4);
  assert.deepEqual(s.ids.slice(4), [vocab['3'], vocab['#']]);
  assert.deepEqual(s.offsets, [[0, 1], [1, 2]]);
});

test('a BOS comes first when the description says so', () => {
  const withBos: TokenizerDescription = { ...desc, add_bos: true, bos_token_id: 1 };
  const s = scoringInput(withBos, 'ab');
  assert.deepEqual(s.ids, [1, vocab.a, vocab.b]);
  assert.equal(s.textStart, 1);
});

test('too long for the context is an error that gives both lengths', () => {
  assert.throws(() => scoringInput(desc, '0123456789', 'abc'), /13 tokens long; the model's context is 12 tokens/);
  assert.doesNotThrow(() => scoringInput(desc, '0123456789', 'a\n'));
  assert.throws(() => scoringInput(desc, ''), /no text to score/);
});

test('a malformed description is rejected with the field named', () => {
  assert.throws(() => checkTokenizerDescription({ ...desc, kind: 'hf' }), /tokenizer kind "hf" is not supported/);
  assert.throws(() => checkTokenizerDescription({ ...desc, prompt_template: 'Q: ' }), /prompt_template/);
  assert.throws(() => checkTokenizerDescription({ ...desc, vocab: { a: 'x' } }), /vocab entry "a"/);
  assert.throws(() => checkTokenizerDescription({ ...desc, add_bos: true, bos_token_id: null }), /no 'bos_token_id'/);
  assert.throws(() => checkTokenizerDescription([]), /not a JSON object/);
});
