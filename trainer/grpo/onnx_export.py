"""ONNX export of a checkpoint's policy and reference, for the extension's in-editor scoring.

Each exported model takes `input_ids` int64 [batch, seq] (both dynamic) and returns, for every position t
< seq − 1, the log-probability of token t+1 given tokens ≤ t (`logp`) and the entropy of that next-token
distribution (`entropy`), both float32 [batch, seq − 1]. The log-softmax, the gather and the entropy are
inside the graph, so a reader only tokenizes and runs it. The distribution is the model's own
(temperature 1), the same one the `score` request reports.

Beside the two models go `tokenizer.json` — OUR description of the tokenizer (not Hugging Face's file),
enough to tokenize exactly as the trainer does — and `manifest.json`. Two kinds: "char" (the built-in
model's character tokenizer, described in full: vocabulary and special tokens) and "hf" (a Hugging Face
fast tokenizer: the description names copies of the trainer's own `tokenizer.json` and
`tokenizer_config.json` under `hf/`, which the extension reads with `@huggingface/tokenizers`, and carries
the chat template). Slow (Python-only) tokenizers cannot be reproduced outside Python and are refused.

The exporter is torch's dynamo exporter (`torch.onnx.export(..., dynamo=True)`, which needs `onnxscript`):
the TorchScript exporter (`dynamo=False`) cannot export transformers' Llama mask code (aten::diff).

Attention is exported as ONNX opset 23's `Attention` operator with `is_causal=1` (see `_causal_attention`):
the graph takes no attention mask (a scored text is one unpadded sequence), so the seq × seq mask that
transformers would build is never materialised. On the built-in model and a 1,000-token document this made
an onnxruntime forward 2× faster than eager attention's MatMul/Add-mask/Softmax (27 → 20 ms in
onnxruntime 1.32, 61 → 44 ms in onnxruntime-node 1.30, 2 cores). Models whose attention is not plain
causal (sliding windows, mixed layer types) keep eager attention.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from . import prompts

FORMAT = 1
OPSET = 23  # the first opset with Attention (is_causal), RMSNormalization and RotaryEmbedding
CAUSAL = "grpo_export_causal"
MAX_AUTO_PARAMETERS = 50_000_000  # automatic export beside checkpoints only for models up to this size
POLICY, REFERENCE, TOKENIZER, MANIFEST = "policy.onnx", "reference.onnx", "tokenizer.json", "manifest.json"
HF_DIR = "hf"  # kind "hf": the Hugging Face tokenizer files, copied here
HF_FILES = ("tokenizer.json", "tokenizer_config.json")
INPUTS = [{"name": "input_ids", "dtype": "int64", "shape": ["batch", "seq"]}]
OUTPUTS = [{"name": "logp", "dtype": "float32", "shape": ["batch", "seq-1"]},
           {"name": "entropy", "dtype": "float32", "shape": ["batch", "seq-1"]}]


class UnsupportedModel(ValueError):
    """The model cannot be exported for the extension (its tokenizer cannot be described)."""


class NextTokenLogProbs(torch.nn.Module):
    """A causal LM → (log p(x_{t+1} | x_≤t), entropy of p(· | x_≤t)) for t = 0 … seq−2."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Positions per row (not one [1, seq] row broadcast): the exporter fuses rotary embeddings into
        # opset 23's RotaryEmbedding, which wants its cos/sin caches batched like its input.
        batch, seq = input_ids.shape
        positions = torch.arange(seq, device=input_ids.device).unsqueeze(0).expand(batch, seq)
        logits = self.model(input_ids=input_ids, position_ids=positions, use_cache=False).logits[:, :-1, :].float()
        logp_all = F.log_softmax(logits, dim=-1)
        logp = logp_all.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        return logp, entropy


# ---------------------------------------------------------------------------------------------- tokenizer
def tokenizer_kind(tokenizer) -> str:
    """'char' when the tokenizer maps each character to one token (the built-in model's), 'hf' for any other
    Hugging Face fast tokenizer, 'slow' for a Python-only tokenizer (no `tokenizers` backend)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return "slow"
    spec = json.loads(backend.to_str())
    pre, model = spec.get("pre_tokenizer") or {}, spec.get("model") or {}
    specials = {t["content"] for t in spec.get("added_tokens", [])}
    if (model.get("type") == "WordLevel" and spec.get("normalizer") is None
            and pre.get("type") == "Split" and pre.get("pattern") == {"Regex": r"[\s\S]"}
            and pre.get("behavior") == "Isolated" and not pre.get("invert")
            and all(len(tok) == 1 for tok in model.get("vocab", {}) if tok not in specials)):
        return "char"
    return "hf"


def tokenizer_description(tokenizer, max_length: int, max_prompt_length: int | None = None) -> dict[str, Any]:
    """Everything needed to turn a question or a text into the trainer's token ids, without the trainer.

    "char": text is read left to right: a special token's string (e.g. "<eos>") is one token, any other
    character is its own token, or `unk_token_id` if it is not in `vocab`. "hf": the files under `hf/`
    (see `hf_tokenizer_files`) tokenize it. The trainer never adds a BOS token (`add_special_tokens=False`)."""
    kind = tokenizer_kind(tokenizer)
    if kind == "slow":
        raise UnsupportedModel("ONNX export needs a Hugging Face fast tokenizer (a tokenizer.json) or the built-in "
                               f"character tokenizer; {type(tokenizer).__name__} is a slow, Python-only tokenizer, "
                               "which the extension cannot reproduce — it scores through `python -m grpo serve`")
    desc: dict[str, Any] = {"kind": kind}
    if kind == "char":
        vocab = tokenizer.get_vocab()
        desc["vocab"] = dict(sorted(vocab.items(), key=lambda kv: kv[1]))
        desc["special_tokens"] = sorted(tokenizer.all_special_tokens, key=lambda t: vocab[t])
    else:
        desc["files"] = {"tokenizer": f"{HF_DIR}/{HF_FILES[0]}", "config": f"{HF_DIR}/{HF_FILES[1]}"}
        desc["chat_template"] = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None
    desc.update({
        "unk_token_id": tokenizer.unk_token_id, "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id,
        "add_bos": False,
        "prompt_template": prompts.plain("{question}"),
        "max_length": int(max_length),
    })
    if max_prompt_length is not None:
        desc["max_prompt_length"] = int(max_prompt_length)
    return desc


def hf_tokenizer_files(tokenizer) -> dict[str, str]:
    """kind "hf": the trainer's tokenizer as Hugging Face files (name → text), written the way
    `save_pretrained` writes them, with the runtime's padding and truncation switched off (scoring never
    pads or truncates; a limit is an error instead)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        files = {name: (Path(tmp) / name).read_text(encoding="utf-8") for name in HF_FILES}
    spec = json.loads(files["tokenizer.json"])
    spec["truncation"], spec["padding"] = None, None
    files["tokenizer.json"] = json.dumps(spec, ensure_ascii=False)
    return files


def context_length(model) -> int:
    return int(getattr(model.config, "max_position_embeddings", 0) or 1 << 20)


def num_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())  # tied weights are counted once


# ---------------------------------------------------------------------------------------------- export
def _causal_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **_):
    """transformers' attention-function signature, for export only: causal SDPA with no mask (the
    exporter turns it into one `Attention` node). Valid because exported graphs never see padding."""
    groups = getattr(module, "num_key_value_groups", 1)
    if groups > 1:
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    out = F.scaled_dot_product_attention(query, key, value, is_causal=True, scale=scaling)
    return out.transpose(1, 2).contiguous(), None


def _register_causal() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(CAUSAL, _causal_attention)
    AttentionMaskInterface.register(CAUSAL, lambda *args, **kwargs: None)  # no mask is built at all


def _plain_causal(config) -> bool:
    """True when every layer attends to all earlier tokens (no sliding window, no local/chunked layers)."""
    layer_types = getattr(config, "layer_types", None) or []
    if any(t != "full_attention" for t in layer_types):
        return False
    if getattr(config, "use_sliding_window", False) and getattr(config, "sliding_window", None):
        return False
    return not getattr(config, "attention_chunk_size", None)


@contextlib.contextmanager
def _quiet():
    """The exporter prints progress and warnings; stdout may be the protocol stream, so send it to stderr."""
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def export_model(model: torch.nn.Module, path: Path, max_length: int | None = None) -> None:
    """Write `model` (a transformers causal LM) as an ONNX graph of NextTokenLogProbs to `path`.
    The model itself is left untouched (a float32 CPU copy is exported); the caller's RNG streams too."""
    max_length = max_length or context_length(model)
    clone = copy.deepcopy(model).to(device="cpu", dtype=torch.float32).eval()
    # SDPA's export adds NaN-safe masking over the whole seq × seq grid (Where/IsNaN), half of onnxruntime's
    # time on a 1,000-token document; eager builds and adds the mask; the causal path builds none.
    if _plain_causal(clone.config):
        _register_causal()
        clone.set_attn_implementation(CAUSAL)
    else:
        clone.set_attn_implementation("eager")
    wrapper = NextTokenLogProbs(clone).eval()
    vocab = int(clone.config.vocab_size)
    example = (torch.arange(16, dtype=torch.long).view(2, 8) % vocab)
    batch = torch.export.Dim("batch", min=1, max=4096)
    seq = torch.export.Dim("seq", min=2, max=max(3, max_length))
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices), torch.no_grad(), _quiet():
        torch.onnx.export(wrapper, (example,), str(tmp), dynamo=True, input_names=["input_ids"],
                          output_names=["logp", "entropy"], dynamic_shapes={"input_ids": {0: batch, 1: seq}},
                          opset_version=OPSET, optimize=True, verbose=False, external_data=False)
    os.replace(tmp, path)


def fingerprint(model: torch.nn.Module) -> str:
    """A digest of a model's configuration and weights: equal digests ⇒ identical exported graphs."""
    h = hashlib.sha256(model.config.to_json_string().encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


class Exporter:
    """Exports policy + reference + tokenizer.json + manifest.json into a folder. Remembers where it already
    wrote a model with given weights, so an unchanged reference is copied instead of exported again."""

    def __init__(self):
        self._written: dict[str, Path] = {}  # fingerprint → an .onnx file holding those weights

    def _model(self, model, out: Path, digest: str, max_length: int, later: Path | None) -> None:
        known = self._written.get(digest)
        if known is not None and known.is_file():
            shutil.copyfile(known, out)
        else:
            export_model(model, out, max_length)
        self._written[digest] = later if later is not None else out

    def export(self, out_dir: Path, policy, reference, tokenizer, *, step: int | None, checkpoint: str,
               max_prompt_length: int | None = None, final_dir: Path | None = None) -> dict[str, Any]:
        """`final_dir`: where `out_dir` will end up after the caller renames it (a checkpoint's tmp dir)."""
        out_dir = Path(out_dir)
        max_length = context_length(policy)
        desc = tokenizer_description(tokenizer, max_length, max_prompt_length)  # refuses unsupported kinds first
        out_dir.mkdir(parents=True, exist_ok=True)
        p_digest = fingerprint(policy)
        r_digest = p_digest if reference is policy else fingerprint(reference)
        later = (lambda name: Path(final_dir) / name) if final_dir is not None else (lambda name: None)
        self._model(policy, out_dir / POLICY, p_digest, max_length, later(POLICY))
        if r_digest == p_digest:
            shutil.copyfile(out_dir / POLICY, out_dir / REFERENCE)
        else:
            self._model(reference, out_dir / REFERENCE, r_digest, max_length, later(REFERENCE))
        if desc["kind"] == "hf":
            (out_dir / HF_DIR).mkdir(exist_ok=True)
            for name, text in hf_tokenizer_files(tokenizer).items():
                tmp = out_dir / HF_DIR / (name + ".tmp")
                tmp.write_text(text, encoding="utf-8")
                os.replace(tmp, out_dir / HF_DIR / name)
        _write_json(out_dir / TOKENIZER, desc)
        manifest = {"format": FORMAT, "step": step, "checkpoint": checkpoint, "opset": OPSET,
                    "inputs": INPUTS, "outputs": OUTPUTS, "policy": POLICY, "reference": REFERENCE,
                    "tokenizer": TOKENIZER, "num_parameters": num_parameters(policy),
                    "max_length": max_length, "temperature": 1.0}
        _write_json(out_dir / MANIFEST, manifest)  # last: a manifest means the folder is complete
        return manifest


# ---------------------------------------------------------------------------------------------- in the background
# The trainer exports checkpoints in one long-lived worker process (`python -m grpo export-onnx --worker`), so an
# export never blocks a training step: the worker imports torch and warms the exporter once (about 13 s on 2
# cores, loaded), then each checkpoint costs its policy's export (about 4 s; an unchanged reference, such as
# step_000000's policy, is copied). A process, not a thread: the dynamo exporter is Python-heavy (a thread would
# hold the GIL against the training loop) and keeps global tracing state. It writes `CKPT/onnx.tmp`; the trainer
# renames it to `CKPT/onnx` when the worker reports success, so an `onnx/` folder is always complete (its
# manifest.json written last, then the rename). The worker dies with the trainer (PR_SET_PDEATHSIG): a kill
# leaves at most an `onnx.tmp`, which nothing reads and the next run removes.
TMP_DIR = "onnx.tmp"
IDLE_FACTOR = 3.0  # the worker exports at most a quarter of the time, but for the start and the end
ONNX_DIR = "onnx"


def export_checkpoint(exporter: "Exporter", ckpt: Path, out: Path, load) -> dict[str, Any]:
    """Export a run's checkpoint (policy and the reference in force for it) into `out`, as the trainer did
    in-process: the manifest names it `checkpoints/<name>`, the tokenizer description carries the run's
    max_prompt_length. `load`: context.from_checkpoint (given by the command, so that this module, which the
    checkpoint saver imports, imports no policy context), called without user code (the task and reward are
    not needed)."""
    ctx, source, run_dir = load(ckpt, torch.device("cpu"), user_code=False)
    name = Path(source.checkpoint).name
    return exporter.export(out, ctx.policy, ctx.reference if ctx.reference is not None else ctx.policy,
                           ctx.tokenizer, step=source.step, checkpoint=f"checkpoints/{name}",
                           max_prompt_length=ctx.settings.max_prompt_length if run_dir is not None else None,
                           final_dir=Path(ckpt) / ONNX_DIR)


def worker_main(stdin, stdout, load) -> int:
    """`export-onnx --worker`: one JSON job a line ({"checkpoint": path}) → one JSON answer a line
    ({"checkpoint", "ok", "error", "seconds"}), until stdin closes. `load`: as export_checkpoint's."""
    import time

    torch.set_num_threads(1)  # the other core(s) train
    exporter = Exporter()
    for line in stdin:
        try:
            job = json.loads(line)
            ckpt = Path(job["checkpoint"])
        except (ValueError, KeyError, TypeError) as e:
            stdout.write(json.dumps({"ok": False, "error": f"bad job: {e}"}) + "\n")
            stdout.flush()
            continue
        t0 = time.time()
        out = ckpt / TMP_DIR
        answer: dict[str, Any] = {"checkpoint": str(ckpt)}
        try:
            shutil.rmtree(out, ignore_errors=True)
            export_checkpoint(exporter, ckpt, out, load)
            answer["ok"] = True
        except Exception as e:  # noqa: BLE001 - reported to the trainer, which warns and trains on
            shutil.rmtree(out, ignore_errors=True)
            answer.update(ok=False, error=f"{type(e).__name__}: {e}")
        answer["seconds"] = round(time.time() - t0, 2)
        stdout.write(json.dumps(answer) + "\n")
        stdout.flush()
    return 0


def _die_with_parent() -> None:  # in the forked child, before exec
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux: a stray worker finishes its job and exits on stdin EOF
        pass
    try:
        os.nice(5)
    except OSError:
        pass


class Background:
    """The trainer's side of the worker: one export at a time; step_000000's export is always made, of the
    other checkpoints only the newest waiting one (a checkpoint every 2 steps does not queue an export each);
    `finish` waits (bounded) for what is left, so the last checkpoint has its export when the run ends.
    `report(message)` is told of failures."""

    def __init__(self, report):
        self.report = report
        self.proc = None
        self.answers = None  # queue.Queue of the worker's answer lines (None: EOF)
        self.running: Path | None = None
        self.waiting: list[Path] = []
        self.failures = 0
        self.done: list[tuple[str, float]] = []  # (checkpoint name, seconds) of the exports made
        # On 2 cores an export running all the time (save_steps=2) slowed GRPO steps by about a third: after an
        # export of t seconds the next one (but the start's, and those the end waits for) waits IDLE_FACTOR·t.
        self.idle_until = 0.0
        self.finishing = False

    # ------------------------------------------------------------------ queue
    def submit(self, ckpt: Path) -> None:
        ckpt = Path(ckpt)
        self.waiting = [w for w in self.waiting if w.name == ckpt.name or w.name == "step_000000"]
        self.waiting = [w for w in self.waiting if w.name != ckpt.name] + [ckpt]
        self.poll()

    def busy(self) -> set[str]:
        """The checkpoints an export reads or will read: pruning keeps them."""
        return {p.name for p in self.waiting} | ({self.running.name} if self.running is not None else set())

    def cancel(self, name: str) -> None:
        """Before a checkpoint of this name is replaced: drop its waiting export; a running one is ended with
        the worker (restarted on the next export)."""
        self.waiting = [w for w in self.waiting if w.name != name]
        if self.running is not None and self.running.name == name:
            self._stop_worker()

    def poll(self, timeout: float = 0.0) -> None:
        import queue

        if self.running is not None:
            try:
                line = self.answers.get(timeout=timeout) if timeout else self.answers.get_nowait()
            except queue.Empty:
                return
            self._finished(line)
        if self.running is None and self.waiting:
            import time

            nxt = self.waiting[0]
            if nxt.name == "step_000000" or self.finishing or time.time() >= self.idle_until:
                self._start(self.waiting.pop(0))

    def finish(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the running and waiting exports, then end the worker; an export
        not done by then is abandoned (its onnx.tmp removed) with a warning."""
        import time

        end = time.time() + timeout
        self.finishing = True
        while (self.running is not None or self.waiting) and time.time() < end:
            self.poll(timeout=min(0.5, max(0.01, end - time.time())))
        left = self.busy()
        self._stop_worker()
        self.waiting = []
        if left:
            self.report(f"ONNX export of {', '.join(sorted(left))} not finished within {timeout:.0f}s; make it with "
                        "python -m grpo export-onnx")

    def abandon(self) -> None:
        """End the worker and drop what waits (a failed run); an unfinished onnx.tmp is removed."""
        self.waiting = []
        self._stop_worker()

    # ------------------------------------------------------------------ worker
    def _start(self, ckpt: Path) -> None:
        if not ckpt.is_dir():  # pruned or replaced meanwhile
            return
        if self.proc is None or self.proc.poll() is not None:
            if self.failures >= 3:
                return
            self._spawn()
        self.running = ckpt
        try:
            self.proc.stdin.write(json.dumps({"checkpoint": str(ckpt.resolve())}) + "\n")
            self.proc.stdin.flush()
        except OSError:  # the worker died: the reader reports EOF
            pass

    def _spawn(self) -> None:
        import queue
        import subprocess
        import tempfile
        import threading

        pkg_root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([pkg_root, *filter(None, [os.environ.get("PYTHONPATH")])])}
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-m", "grpo", "export-onnx", "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env,
                                     preexec_fn=_die_with_parent, close_fds=True)
        answers: "queue.Queue" = queue.Queue()
        out = self.proc.stdout

        def read() -> None:
            for line in out:
                answers.put(line)
            answers.put(None)

        threading.Thread(target=read, name="onnx-export-answers", daemon=True).start()
        self.answers = answers

    def _finished(self, line: str | None) -> None:
        ckpt, self.running = self.running, None
        if line is None:  # the worker ended without answering
            self.failures += 1
            self.stderr.seek(0)
            tail = self.stderr.read().decode("utf-8", "replace").strip().splitlines()[-3:]
            self.proc = None
            shutil.rmtree(ckpt / TMP_DIR, ignore_errors=True)
            self.report(f"ONNX export of {ckpt.name} failed: the export process ended ({' | '.join(tail)})")
            return
        try:
            answer = json.loads(line)
        except ValueError:
            answer = {"ok": False, "error": f"unreadable answer {line[:200]!r}"}
        tmp = ckpt / TMP_DIR
        if not answer.get("ok"):
            shutil.rmtree(tmp, ignore_errors=True)
            self.report(f"ONNX export of {ckpt.name} failed: {answer.get('error')}")
            return
        try:
            if (ckpt / ONNX_DIR).exists():
                shutil.rmtree(ckpt / ONNX_DIR)
            os.replace(tmp, ckpt / ONNX_DIR)  # complete, manifest.json included: now visible
            self.done.append((ckpt.name, float(answer.get("seconds", 0.0))))
            import time

            self.idle_until = time.time() + IDLE_FACTOR * self.done[-1][1]
            logging.getLogger("grpo").info("exported %s/onnx in %.1fs (in the background)", ckpt.name,
                                           self.done[-1][1])
        except OSError as e:  # pruned or replaced while it was exported
            shutil.rmtree(tmp, ignore_errors=True)
            if ckpt.is_dir():
                self.report(f"ONNX export of {ckpt.name}: could not move it into place: {e}")

    def _stop_worker(self) -> None:
        if self.proc is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            if self.running is not None:
                self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
                self.proc.kill()
                self.proc.wait()
        if self.running is not None:
            shutil.rmtree(self.running / TMP_DIR, ignore_errors=True)
        self.proc, self.running = None, None
