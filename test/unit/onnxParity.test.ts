/**
 * The extension's per-token values (onnxruntime-node on the exported models, src/inspect/onnx/) equal the
 * trainer's (PyTorch, through `python -m grpo serve` and its `score` request) on the same checkpoint and
 * text, to 1e-4. Also: serve answers sample_group with a valid group, refuses bad input with a message
 * naming it, and a serve process that dies mid-request fails that request clearly.
 *
 * The fixtures are real: test/fixtures/tiny_run.py (the built-in model, character tokenizer, saved as
 * step_000000, the reference, and after a few SFT steps as step_000003) and test/fixtures/tiny_hf_run.py
 * (a tiny random Qwen2 with a byte-level BPE tokenizer and a chat template, step_000000 and a nudged
 * step_000001), each exported with `python -m grpo export-onnx`.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { inspect } from 'node:util';
import { onText } from '../../src/inspect/docScores';
import { findExport } from '../../src/inspect/onnx/exports';
import { HfTokenizer } from '../../src/inspect/onnx/hfTokenizer';
import { OnnxScorer } from '../../src/inspect/onnx/scorer';
import { trainerEnv } from '../../src/environment/python';
import { TrainerGoneError, TrainerRequestError } from '../../src/shared/requests';
import { ServeProcess } from '../../src/inspect/serve';

const repo = path.resolve(__dirname, '../..');
const trainerDir = path.join(repo, 'trainer');
const python = process.env.GRPO_TEST_PYTHON ?? path.join(repo, '.venv', 'bin', 'python');
const ready = fs.existsSync(python) && fs.existsSync(path.join(trainerDir, 'grpo', 'onnx_export.py'));
const skip = !ready && '.venv (scripts/setup.sh) or the trainer\'s ONNX export is missing';

interface Fixture { run: string; checkpoint: string; serve: ServeProcess; scorer: OnnxScorer }

/** A fixture run (test/fixtures/`script`), its checkpoint `step` exported by the CLI, a serve process for
 *  that checkpoint and the extension's scorer on the export. */
async function exportedRun(script: string, step: string): Promise<Fixture> {
  const run = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-parity-')), 'run');
  const env = trainerEnv(trainerDir);
  execFileSync(python, [path.join(repo, 'test', 'fixtures', script), run], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const checkpoint = path.join(run, 'checkpoints', step);
  execFileSync(python, ['-m', 'grpo', 'export-onnx', '--checkpoint', checkpoint, '--out', path.join(checkpoint, 'onnx')], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const serve = new ServeProcess(python, checkpoint, { trainerDir });
  const scorer = await OnnxScorer.load(findExport(run));
  await serve.ready;
  return { run, checkpoint, serve, scorer };
}

let run = '';
let checkpoint = '';
let serve: ServeProcess | undefined;
let scorer: OnnxScorer | undefined;
let hfRun = '';
let hfServe: ServeProcess | undefined;
let hfScorer: OnnxScorer | undefined;

before(async () => {
  if (skip) return;
  ({ run, checkpoint, serve, scorer } = await exportedRun('tiny_run.py', 'step_000003'));
  ({ run: hfRun, serve: hfServe, scorer: hfScorer } = await exportedRun('tiny_hf_run.py', 'step_000001'));
}, { timeout: 600_000 });

after(() => {
  serve?.dispose();
  hfServe?.dispose();
  for (const r of [run, hfRun]) if (r) fs.rmSync(path.dirname(r), { recursive: true, force: true });
});

/** The trainer's own tokenizer (transformers, Rust) on each text, and its chat-formatted prompt for `question`. */
function trainerTokenize(checkpoint: string, texts: string[], question: string): { ids: number[][]; prompt: string } {
  const code = 'import json, sys\nfrom transformers import AutoTokenizer\nfrom grpo import prompts\n'
    + 'tok = AutoTokenizer.from_pretrained(sys.argv[1])\nreq = json.load(sys.stdin)\n'
    + 'print(json.dumps({"ids": [tok(t, add_special_tokens=False)["input_ids"] for t in req["texts"]], '
    + '"prompt": prompts.formatter(tok, "on")(req["question"])}))';
  const out = execFileSync(python, ['-c', code, checkpoint], { env: trainerEnv(trainerDir), input: JSON.stringify({ texts, question }), stdio: ['pipe', 'pipe', 'pipe'] });
  return JSON.parse(out.toString('utf8')) as { ids: number[][]; prompt: string };
}

const TEXTS: { name: string; text: string; prompt?: string }[] = [
  { name: 'a worked solution as a continuation of its question', prompt: '(3+1)*3+4*1\n', text: '3+1=4\n4*3=12\n4*1=4\n12+4=16\n#### 16' },
  { name: 'a pasted document scored whole (first character unscored)', text: 'The answer is 42, because 6*7=42.\nCheck: 42/7 = 6!' },
  { name: 'text with special-token strings in it', prompt: '1+2\n', text: '3<eos>#### 3' },
  { name: 'a long document (1,000 characters)', text: Array.from({ length: 1000 }, (_, i) => '0123456789+-*=\n #()'[(i * 7) % 19]).join('') },
];

/** The two scorers agree: same tokens at the same places, every value within 1e-4. */
async function assertParity(name: string, s: ServeProcess, onnxScorer: OnnxScorer, text: string, prompt = ''): Promise<void> {
  const torch = onText(await s.request('score', { text, ...(prompt ? { prompt } : {}) }), text);
  const onnx = await onnxScorer.score(text, prompt);
  assert.deepEqual(onnx.offsets, torch.offsets, 'same tokens at the same character offsets');
  assert.deepEqual(onnx.tokens, torch.tokens);
  let worst = 0;
  for (const k of ['logp', 'ref_logp', 'kl', 'entropy'] as const) {
    for (let i = 0; i < torch[k].length; i++) {
      const d = Math.abs(onnx[k][i] - torch[k][i]);
      worst = Math.max(worst, d);
      assert.ok(d <= 1e-4, `${k}[${i}] (token ${JSON.stringify(torch.tokens[i])}): onnx ${onnx[k][i]} vs torch ${torch[k][i]}`);
    }
  }
  assert.ok(Math.abs(onnx.sequence_kl - torch.sequence_kl) <= 1e-4);
  assert.ok(Math.abs(onnx.sum_logp - torch.sum_logp) <= 1e-4 * torch.tokens.length);
  assert.ok(torch.kl.some((x) => x > 1e-4), 'the policy differs from its reference, so KL is not trivially 0');
  console.log(`# ${name}: ${torch.tokens.length} tokens, max |onnx − torch| = ${worst.toExponential(2)}`);
}

for (const c of TEXTS) {
  test(`ONNX per-token values equal PyTorch's to 1e-4: ${c.name}`, { skip, timeout: 120_000 }, async () => {
    await assertParity(c.name, serve!, scorer!, c.text, c.prompt);
  });
}

const HF_TEXTS: { name: string; text: string; prompt?: string }[] = [
  { name: 'non-ASCII (2-, 3-, 4-byte UTF-8) and newlines, no prompt', text: 'Héllo wörld 😀 ok\n\n  x = ∑ 3/4 — naïve café 日本語\r\n#### 42' },
  { name: 'a completion after its chat-templated prompt, ending in a special token', prompt: '<|im_start|>user\nWhat is half of 1?<|im_end|>\n<|im_start|>assistant\n', text: 'Half of 1 is \\boxed{\\frac{1}{2}}.\n😀😀<|im_end|>' },
  { name: 'a long document (~1,000 characters, several hundred tokens)', text: Array.from({ length: 40 }, (_, i) => `Step ${i}: 12 + ${i} = ${12 + i} é\n`).join('') },
];

test('hf: the extension tokenizes exactly as the trainer (ids) and renders the same chat-templated prompt', { skip, timeout: 120_000 }, async () => {
  const cp = path.join(hfRun, 'checkpoints', 'step_000001');
  const texts = HF_TEXTS.flatMap((c) => [c.text, ...(c.prompt ? [c.prompt] : [])]);
  const want = trainerTokenize(cp, texts, 'What is half of 1?');
  const tok = hfScorer!.text as HfTokenizer;
  assert.ok(tok instanceof HfTokenizer, `the export's tokenizer is kind "hf" (${inspect(hfScorer!.tokenizer.kind)})`);
  texts.forEach((t, i) => assert.deepEqual(tok.encode(t).ids, want.ids[i], `ids of ${JSON.stringify(t.slice(0, 40))}`));
  assert.equal(tok.chatPrompt('What is half of 1?'), want.prompt);
  assert.equal(HF_TEXTS[1].prompt, want.prompt, 'the test\'s prompt is the templated one');
});

for (const c of HF_TEXTS) {
  test(`hf: ONNX per-token values equal PyTorch's to 1e-4: ${c.name}`, { skip, timeout: 120_000 }, async () => {
    await assertParity(`hf: ${c.name}`, hfServe!, hfScorer!, c.text, c.prompt);
  });
}

test('hf: a document longer than the context is refused by both, with both lengths', { skip, timeout: 60_000 }, async () => {
  const long = 'word '.repeat(1100);
  await assert.rejects(hfScorer!.score(long), /tokens long; the model's context is 1024 tokens/);
  await assert.rejects(hfServe!.request('score', { text: long }), (e: Error) => e instanceof TrainerRequestError && /context of 1024 tokens/.test(e.message));
});

test('both paths refuse characters outside the vocabulary, naming them', { skip, timeout: 60_000 }, async () => {
  await assert.rejects(serve!.request('score', { text: '1+2=3 ☃' }), (e: Error) => e instanceof TrainerRequestError && /☃/.test(e.message));
  await assert.rejects(scorer!.score('1+2=3 ☃'), /outside the model's vocabulary: '☃'/);
  await assert.rejects(scorer!.score('1'.repeat(1030)), /1030 tokens long; the model's context is 1024 tokens/);
});

test('serve answers sample_group with a whole group; a question longer than the prompt limit is refused', { skip, timeout: 120_000 }, async () => {
  const g = await serve!.request('sample_group', { question: '(3+1)*3', num_generations: 3, max_completion_length: 16, seed: 1 });
  assert.equal(g.completions.length, 3);
  assert.equal(g.tokens?.length, 3); // sample_group answers per-token arrays
  assert.equal(g.question, '(3+1)*3');
  assert.equal(g.answer, '12');
  assert.ok(g.step_rewards && g.step_ends, 'arith groups carry per-step rewards');
  await assert.rejects(serve!.request('sample_group', { question: '1+'.repeat(600) + '1' }), (e: Error) => e instanceof TrainerRequestError && /max_prompt_length|context/.test(e.message));
});

test('a serve process that dies mid-request fails it with a message naming the request', { skip, timeout: 120_000 }, async () => {
  const doomed = new ServeProcess(python, checkpoint, { trainerDir });
  await doomed.ready;
  const pending = doomed.request('sample_group', { question: '(3+1)*3+4*1', num_generations: 40, max_completion_length: 200 }); // within max_request_tokens (8192)
  setTimeout(() => doomed.kill('SIGKILL'), 300);
  await assert.rejects(pending, (e: Error) => e instanceof TrainerGoneError && /step_000003 exited \(SIGKILL\) while answering sample_group/.test(e.message));
  assert.equal(doomed.alive, false);
  await assert.rejects(doomed.request('score', { text: 'ab' }), /exited|not running/);
});
