"""`export-onnx`: the ONNX graphs give the trainer's own per-token values (the `score` request, PyTorch)
to 1e-4, and tokenizer.json is enough to tokenize exactly as the trainer does."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models as tk_models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from grpo import context, inspector, models, onnx_export

ort = pytest.importorskip("onnxruntime")
ROOT = Path(__file__).resolve().parents[2]
TEXTS = [  # (prompt, text): a worked solution, no prompt, a document far longer than the export example
    ("(3+1)*3+4*1\n", "3+1=4\n4*3=12\n4*1=4\n12+4=16\n#### 16"),
    ("", "Hello, world: 7*8=56?"),
    ("2-9\n", "The quick brown fox jumps over the lazy dog. " * 20),
]


def cli(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer")}
    return subprocess.run([sys.executable, "-m", "grpo", *args], capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    p = cli("export-onnx", "--checkpoint", str(tiny_run), "--out", str(out))  # a run dir: its latest checkpoint
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["step"] == 5 and summary["checkpoint"].endswith("step_000005")
    return out


@pytest.fixture(scope="module")
def target(tiny_run):
    return context.from_checkpoint(tiny_run, torch.device("cpu"))[0]


def describe_tokenize(desc: dict, text: str) -> list[int]:
    """tokenizer.json's documented rule, implemented from the description alone."""
    ids, i = [], 0
    specials = sorted(desc["special_tokens"], key=len, reverse=True)
    while i < len(text):
        hit = next((s for s in specials if text.startswith(s, i)), None)
        if hit is not None:
            ids.append(desc["vocab"][hit])
            i += len(hit)
        else:
            ids.append(desc["vocab"].get(text[i], desc["unk_token_id"]))
            i += 1
    return ([desc["bos_token_id"]] if desc["add_bos"] else []) + ids


def test_files_and_manifest(exported):
    names = sorted(p.name for p in exported.iterdir())
    assert names == ["manifest.json", "policy.onnx", "reference.onnx", "tokenizer.json"]
    m = json.loads((exported / "manifest.json").read_text())
    assert m["format"] == 1 and m["opset"] == onnx_export.OPSET and m["policy"] == "policy.onnx"
    assert m["reference"] == "reference.onnx" and m["tokenizer"] == "tokenizer.json"
    assert [i["name"] for i in m["inputs"]] == ["input_ids"]
    assert [o["name"] for o in m["outputs"]] == ["logp", "entropy"]
    assert 100_000 < m["num_parameters"] < 1_000_000
    sess = ort.InferenceSession(str(exported / "policy.onnx"), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    assert inp.name == "input_ids" and inp.type == "tensor(int64)" and all(isinstance(d, str) for d in inp.shape)
    assert [o.name for o in sess.get_outputs()] == ["logp", "entropy"]


@pytest.mark.parametrize("which", ["policy", "reference"])
def test_onnx_equals_the_trainers_score(exported, target, which):
    desc = json.loads((exported / "tokenizer.json").read_text())
    sess = ort.InferenceSession(str(exported / f"{which}.onnx"), providers=["CPUExecutionProvider"])
    ref_sess = ort.InferenceSession(str(exported / "policy.onnx"), providers=["CPUExecutionProvider"])
    for prompt, text in TEXTS:
        want = inspector.score(target, text, prompt)
        ids = describe_tokenize(desc, prompt) + describe_tokenize(desc, text)
        logp, entropy = sess.run(None, {"input_ids": np.array([ids], dtype=np.int64)})
        assert logp.shape == entropy.shape == (1, len(ids) - 1) and logp.dtype == np.float32
        n = len(want["logp"])  # the scored tokens are the last n; ONNX position t predicts token t+1
        key = "logp" if which == "policy" else "ref_logp"
        np.testing.assert_allclose(logp[0, -n:], want[key], atol=1e-4, rtol=0)
        if which == "policy":
            np.testing.assert_allclose(entropy[0, -n:], want["entropy"], atol=1e-4, rtol=0)
        else:  # the reference really is another model, so agreement above is not a coincidence
            pol = ref_sess.run(None, {"input_ids": np.array([ids], dtype=np.int64)})[0]
            assert np.abs(pol - logp).max() > 1e-2


def test_a_batch_of_equal_length_rows(exported):
    sess = ort.InferenceSession(str(exported / "policy.onnx"), providers=["CPUExecutionProvider"])
    desc = json.loads((exported / "tokenizer.json").read_text())
    rows = [describe_tokenize(desc, s) for s in ("1+2\n1+2=3", "9*9\n9*9=81"[:9], "(2-3)*4\n-")]
    rows = [r[:9] for r in rows]
    both = sess.run(None, {"input_ids": np.array(rows, dtype=np.int64)})[0]
    alone = sess.run(None, {"input_ids": np.array(rows[1:2], dtype=np.int64)})[0]
    assert both.shape == (3, 8)
    np.testing.assert_allclose(both[1], alone[0], atol=1e-5)


def test_tokenizer_description_tokenizes_like_the_trainer(exported, target):
    desc = json.loads((exported / "tokenizer.json").read_text())
    assert desc["kind"] == "char" and desc["add_bos"] is False and desc["prompt_template"] == "{question}\n"
    assert desc["max_length"] == 1024 and desc["max_prompt_length"] == 128
    assert desc["eos_token_id"] == target.tokenizer.eos_token_id
    for text in ("(3+1)*3\n", "Hello <eos> there", "tab\there é×", "a<pad><unk>b", ""):
        assert describe_tokenize(desc, text) == target.tokenizer(text, add_special_tokens=False)["input_ids"], text
    question = "7-2*3"
    prompt = desc["prompt_template"].replace("{question}", question)
    assert prompt == target.prompt(question)  # the run's training prompt


def test_tokenizer_kinds():
    vocab = {"<unk>": 0, "hello": 1, "world": 2}
    tok = Tokenizer(tk_models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    assert onnx_export.tokenizer_kind(hf) == "hf"
    assert onnx_export.tokenizer_kind(models.char_tokenizer()) == "char"

    class Slow:  # a Python-only tokenizer has no backend_tokenizer
        pass

    assert onnx_export.tokenizer_kind(Slow()) == "slow"
    with pytest.raises(onnx_export.UnsupportedModel, match="slow, Python-only"):
        onnx_export.tokenizer_description(Slow(), 1024)


# ------------------------------------------------------------------ a subword (byte-level BPE) checkpoint
HF_TEXTS = [  # (prompt, text): non-ASCII (2-, 3- and 4-byte UTF-8), newlines, a special token's string
    ("", "Héllo wörld 😀 ok\n\n  x = ∑ 3/4\n#### 42"),
    ("<|im_start|>user\nWhat is 1/2?<|im_end|>\n<|im_start|>assistant\n", "The answer is \\boxed{\\frac{1}{2}}.<|im_end|>"),
    ("Q: ", "Natalia sold 48 clips in April — naïve café 日本語\r\n" * 12),
]


@pytest.fixture(scope="module")
def hf_export(tmp_path_factory):
    """test/fixtures/tiny_hf_run.py's run (a tiny random Qwen2, byte-level BPE, chat template; a policy
    nudged off its reference), its latest checkpoint exported in-process."""
    run = tmp_path_factory.mktemp("hf") / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer")}
    p = subprocess.run([sys.executable, str(ROOT / "test/fixtures/tiny_hf_run.py"), str(run)], capture_output=True,
                       text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr
    ctx, source, _ = context.from_checkpoint(run, torch.device("cpu"))
    out = run / "checkpoints/step_000001/onnx"
    onnx_export.Exporter().export(out, ctx.policy, ctx.reference, ctx.tokenizer, step=1, checkpoint=source.checkpoint)
    return ctx, out


def test_hf_export_carries_the_tokenizer_files(hf_export):
    target, out = hf_export
    assert sorted(p.name for p in out.iterdir()) == ["hf", "manifest.json", "policy.onnx", "reference.onnx",
                                                     "tokenizer.json"]
    desc = json.loads((out / "tokenizer.json").read_text())
    assert desc["kind"] == "hf" and desc["files"] == {"tokenizer": "hf/tokenizer.json",
                                                      "config": "hf/tokenizer_config.json"}
    assert desc["chat_template"] == target.tokenizer.chat_template and "<|im_start|>" in desc["chat_template"]
    assert desc["eos_token_id"] == target.tokenizer.eos_token_id and desc["add_bos"] is False
    assert desc["max_length"] == 1024
    spec = json.loads((out / "hf/tokenizer.json").read_text())
    assert spec["truncation"] is None and spec["padding"] is None
    # the copied file alone tokenizes as the trainer does, added tokens included
    copy = Tokenizer.from_file(str(out / "hf/tokenizer.json"))
    for prompt, text in HF_TEXTS:
        for s in (prompt, text):
            assert copy.encode(s, add_special_tokens=False).ids == target.tokenizer(s, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("which", ["policy", "reference"])
def test_hf_onnx_equals_the_trainers_score(hf_export, which):
    target, out = hf_export
    sess = ort.InferenceSession(str(out / f"{which}.onnx"), providers=["CPUExecutionProvider"])
    tok = target.tokenizer
    for prompt, text in HF_TEXTS:
        want = inspector.score(target, text, prompt)
        ids = tok(prompt, add_special_tokens=False)["input_ids"] + tok(text, add_special_tokens=False)["input_ids"]
        logp, entropy = sess.run(None, {"input_ids": np.array([ids], dtype=np.int64)})
        n = len(want["logp"])
        key = "logp" if which == "policy" else "ref_logp"
        np.testing.assert_allclose(logp[0, -n:], want[key], atol=1e-4, rtol=0)
        if which == "policy":
            np.testing.assert_allclose(entropy[0, -n:], want["entropy"], atol=1e-4, rtol=0)
            assert max(want["kl"]) > 1e-2  # the policy is not its reference: agreement is not a coincidence


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    p = cli("export-onnx", "--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "out"))
    assert p.returncode == 1 and "no such directory" in p.stderr and p.stdout == ""
    empty_run = tmp_path / "run"
    (empty_run / "checkpoints").mkdir(parents=True)
    p = cli("export-onnx", "--checkpoint", str(empty_run), "--out", str(tmp_path / "out"))
    assert p.returncode == 1 and "no complete checkpoint" in p.stderr
    assert not (tmp_path / "out").exists()


def train(run, *sets):
    args = ["train", "--run-dir", str(run), "--quiet"]
    for s in ("sft_steps=2", "sft_batch_size=4", "max_steps=1", "save_steps=0", "eval_steps=0", "eval_size=4",
              "questions_per_step=2", "num_generations=2", "max_completion_length=16", *sets):
        args += ["--set", s]
    return cli(*args)


def test_training_writes_onnx_beside_each_checkpoint(tmp_path):
    run = tmp_path / "run"
    p = train(run)
    assert p.returncode == 0, p.stderr
    ckpts = run / "checkpoints"
    assert sorted(c.name for c in ckpts.iterdir()) == ["step_000000", "step_000001"]
    for step in (0, 1):
        onnx = ckpts / f"step_{step:06d}" / "onnx"
        assert sorted(f.name for f in onnx.iterdir()) == ["manifest.json", "policy.onnx", "reference.onnx",
                                                          "tokenizer.json"]
        m = json.loads((onnx / "manifest.json").read_text())
        assert m["step"] == step and m["checkpoint"] == f"checkpoints/step_{step:06d}"
    # the reference did not change, so step 1's reference is step 0's policy, byte for byte
    assert (ckpts / "step_000001/onnx/reference.onnx").read_bytes() == (ckpts / "step_000000/onnx/policy.onnx").read_bytes()
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert not [e for e in events if e.get("code") == "onnx_export"]
    # and the files beside the checkpoint give that checkpoint's values
    target = context.from_checkpoint(ckpts / "step_000001", torch.device("cpu"))[0]
    desc = json.loads((ckpts / "step_000001/onnx/tokenizer.json").read_text())
    prompt, text = "(3+1)*3\n", "3+1=4\n4*3=12\n#### 12"
    want = inspector.score(target, text, prompt)
    ids = np.array([describe_tokenize(desc, prompt + text)], dtype=np.int64)
    for which, key in (("policy", "logp"), ("reference", "ref_logp")):
        sess = ort.InferenceSession(str(ckpts / f"step_000001/onnx/{which}.onnx"), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(sess.run(None, {"input_ids": ids})[0][0, -len(text):], want[key], atol=1e-4)


def test_automatic_export_can_be_turned_off(tmp_path):
    run = tmp_path / "run"
    p = train(run, "sft_steps=0", "max_steps=0", "onnx_export=false")
    assert p.returncode == 0, p.stderr
    assert (run / "checkpoints/step_000000/config.json").is_file()
    assert not (run / "checkpoints/step_000000/onnx").exists()


def test_attention_is_one_causal_node_per_layer(exported):
    """The built-in model exports attention as opset 23's causal Attention: no seq × seq mask is built."""
    import onnx

    graph = onnx.load(str(exported / "policy.onnx")).graph
    attention = [n for n in graph.node if n.op_type == "Attention"]
    assert len(attention) == 4  # the built-in model's layers
    assert all(any(a.name == "is_causal" and a.i == 1 for a in n.attribute) for n in attention)
    assert not any(n.op_type in ("Softmax", "Where", "Trilu") for n in graph.node)  # the log-softmax is LogSoftmax


def test_sliding_window_models_keep_their_mask(tmp_path):
    """A model whose layers see only a window must not get the plain causal path: its values still match."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=64, use_sliding_window=True, sliding_window=4,
                      max_window_layers=0)
    model = Qwen2ForCausalLM(cfg).eval()
    assert not onnx_export._plain_causal(model.config)
    onnx_export.export_model(model, tmp_path / "m.onnx")
    ids = torch.randint(0, 40, (1, 16))
    with torch.no_grad():
        want = onnx_export.NextTokenLogProbs(model)(ids)[0].numpy()
    got = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"input_ids": ids.numpy()})[0]
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    assert model.config._attn_implementation != onnx_export.CAUSAL  # the caller's model is untouched
