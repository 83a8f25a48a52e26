"""Looking inside the training: the `sample_group`, `score` and `compare` requests.

One implementation answers them for both ends that can: a running `train` process (between optimizer
steps, with its live policy and reference) and `python -m grpo serve --checkpoint DIR` (a checkpoint's
policy and the reference that was in force for it). docs/run-directory.md specifies the requests.

Requests never touch the run: sampling uses its own seeded generator (the run's RNG streams are not
consumed), the policy's train/eval mode is restored, nothing is written to the run directory, and any
failure becomes an `ok: false` answer.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch

from . import algorithm, models, protocol, rollout, sft
from .config import Config, ConfigError, build_config
from .records import CompareResult, GroupRecord, ScoreResult
from .rewards import Rewarder, Scored
from .rundir import latest_checkpoint
from .tasks import arith

log = logging.getLogger("grpo")

MAX_GENERATIONS = 256
_NUMBER = (int, float)


class RequestError(ValueError):
    """Bad input to a request; the message names the problem and goes back as `error`."""


@dataclass
class Target:
    """What requests are answered against."""

    policy: Any
    reference: Any
    tokenizer: Any
    settings: Config
    step: int | None
    checkpoint: str | None = None        # None: the live policy of a running trainer
    phase: str | None = None
    reference_source: str = ""          # where the reference comes from, in words
    rewarder: Rewarder | None = None
    _answers: dict[str, str] | None = field(default=None, repr=False)

    @property
    def device(self) -> torch.device:
        return next(self.policy.parameters()).device

    def source(self, **extra: Any) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "step": self.step, "phase": self.phase,
                "reference": self.reference_source, **extra}

    def get_rewarder(self) -> Rewarder:
        if self.rewarder is None:
            s = self.settings
            try:
                self.rewarder = Rewarder(s.task, s.reward, s.reward_function)
            except ValueError as e:
                raise RequestError(f"cannot score completions: {e}") from None
        return self.rewarder

    def dataset_answer(self, question: str) -> str | None:
        """The answer a JSONL task file gives for `question`, if the file has that question."""
        if self._answers is None:
            self._answers = {}
            path = Path(self.settings.task)
            if self.settings.task != "arith" and path.is_file():
                from .data import load_jsonl_rows
                try:
                    self._answers = {r["question"]: r["answer"] for r in load_jsonl_rows(path)[0]}
                except OSError:
                    pass
        return self._answers.get(question)


# --------------------------------------------------------------------------------------- parameters
_PARAMS: dict[str, dict[str, tuple[tuple[type, ...], bool, str]]] = {
    # name: (accepted types, required, type in words)
    protocol.SAMPLE_GROUP: {
        "question": ((str,), True, "a string"), "answer": ((str, type(None)), False, "a string or null"),
        "num_generations": ((int,), False, "a whole number"), "temperature": (_NUMBER, False, "a number"),
        "max_completion_length": ((int,), False, "a whole number"), "seed": ((int,), False, "a whole number"),
    },
    protocol.SCORE: {"text": ((str,), True, "a string"), "prompt": ((str,), False, "a string")},
    protocol.COMPARE: {
        "question": ((str,), True, "a string"), "max_completion_length": ((int,), False, "a whole number"),
        "temperature": (_NUMBER, False, "a number"), "seed": ((int,), False, "a whole number"),
    },
}
_ENVELOPE = ("v", "type", "id")


def params_of(msg: dict[str, Any]) -> dict[str, Any]:
    """The request's parameters, checked against its type: unknown names and wrong types are named."""
    spec = _PARAMS[msg["type"]]
    out = {}
    for name, value in msg.items():
        if name in _ENVELOPE:
            continue
        if name not in spec:
            raise RequestError(f"unknown parameter {name!r} for {msg['type']} (it takes {', '.join(spec)})")
        types, _, words = spec[name]
        if isinstance(value, bool) or not isinstance(value, types):
            raise RequestError(f"parameter {name!r} must be {words}, got {json.dumps(value)[:40]}")
        out[name] = value
    for name, (_, required, _) in spec.items():
        if required and name not in out:
            raise RequestError(f"{msg['type']} needs the parameter {name!r}")
    return out


def _int_in(name: str, value: int, lo: int, hi: int) -> int:
    if not lo <= value <= hi:
        raise RequestError(f"parameter {name!r} must be between {lo} and {hi}, got {value}")
    return value


def _seed(params: dict) -> int:
    if "seed" in params:
        return _int_in("seed", params["seed"], 0, 2**63 - 1)
    return secrets.randbits(31)  # reported back in `source.seed` so the answer can be reproduced


def _vocabulary(tokenizer, name: str, text: str) -> None:
    try:
        models.check_vocabulary(tokenizer, text)
    except ValueError as e:
        raise RequestError(f"{name}: {e}") from None


def _question_prompt(target: Target, question: str, max_new_tokens: int) -> list[int]:
    """The question's prompt ids, checked against the vocabulary, max_prompt_length and the context."""
    if not question.strip():
        raise RequestError("parameter 'question' is empty")
    _vocabulary(target.tokenizer, "question", question)
    prompt = sft.encode(target.tokenizer, sft.prompt_text(question))
    limit = target.settings.max_prompt_length
    if len(prompt) > limit:
        raise RequestError(f"the question is {len(prompt)} tokens as a prompt, longer than max_prompt_length "
                           f"({limit})")
    context = _context(target.policy)
    if len(prompt) + max_new_tokens > context:
        raise RequestError(f"the question is {len(prompt)} tokens; with max_completion_length {max_new_tokens} "
                           f"it exceeds the model's context of {context} tokens")
    return prompt


def _context(model) -> int:
    return int(getattr(model.config, "max_position_embeddings", 0) or 1 << 20)


class _EvalMode:
    """Sampling and scoring in eval mode, under no_grad; the previous mode is restored."""

    def __init__(self, *modules):
        self.modules = modules

    def __enter__(self):
        self.was = [m.training for m in self.modules]
        self.grad = torch.no_grad()
        self.grad.__enter__()
        for m in self.modules:
            m.eval()

    def __exit__(self, *exc):
        for m, was in zip(self.modules, self.was):
            m.train(was)
        self.grad.__exit__(*exc)


def _r6(t: torch.Tensor) -> list[float]:
    return [round(float(x), 6) for x in t.tolist()]


# --------------------------------------------------------------------------------------- sample_group
def sample_group(policy, reference, tokenizer, question: str, answer: str | None, *, num_generations: int,
                 temperature: float, top_p: float, max_new_tokens: int, supervision: str, scale_rewards: str,
                 rewarder: Rewarder | None, generator: torch.Generator, step: int | None,
                 prompt: list[int] | None = None) -> dict[str, Any]:
    """Sample G completions of `question` from `policy` and record them exactly as training logs a group
    (loop.group_record): rewards, advantages by the training function, per-token log-probs under the
    policy and the reference at the sampling temperature, k3 KL, entropy. `rewarder=None` or
    `answer=None` gives every completion reward 0. For arith questions the per-step rewards are added
    even under outcome supervision (they do not change the advantages then)."""
    from .loop import char_to_token_ends, compute_advantages, group_record

    G = num_generations
    if prompt is None:
        prompt = sft.encode(tokenizer, sft.prompt_text(question))
    try:
        tree = arith.parse(question)
    except ValueError:
        tree = None
    if supervision == "process" and tree is None:
        raise RequestError("process rewards need an arith expression as the question (e.g. (3+1)*3)")
    with _EvalMode(policy):
        batch = rollout.sample(policy, [prompt] * G, max_new_tokens=max_new_tokens, eos_id=tokenizer.eos_token_id,
                               pad_id=tokenizer.pad_token_id, temperature=temperature, top_p=top_p,
                               generator=generator)
        texts = tokenizer.batch_decode(batch.completion_ids, skip_special_tokens=True)
        if rewarder is None or answer is None:
            scored = Scored([0.0] * G, [False] * G)
            if supervision == "process":
                scored.step_rewards, scored.step_ends = map(list, zip(*(arith.process_rewards(question, t)
                                                                        for t in texts)))
        else:
            scored = rewarder([question] * G, texts, [answer] * G)
        advantages, seq_adv, ends = compute_advantages(tokenizer, batch, scored, G, supervision, scale_rewards)
        logp, entropy = rollout.token_logprobs(policy, batch, temperature, with_entropy=True)
        ref_logp, _ = rollout.token_logprobs(reference, batch, temperature)
    if supervision != "process" and tree is not None:
        per = [arith.process_rewards(question, t) for t in texts]
        scored.step_rewards = [rs for rs, _ in per]
        scored.step_ends = [e for _, e in per]
        ids = batch.completion_ids.tolist()
        ends = [char_to_token_ends(tokenizer, ids[i][: int(batch.lengths[i])], scored.step_ends[i])
                for i in range(G)]
    rec = group_record(tokenizer, step if step is not None else -1,
                       {"question": question, "answer": answer}, range(G), batch, texts, scored, seq_adv,
                       advantages, logp.cpu(), None, ref_logp.cpu(), entropy.cpu(), ends)
    if scored.errors:
        rec["reward_errors"] = scored.errors
    return rec


def _sample_group(target: Target, params: dict) -> GroupRecord:
    s = target.settings
    G = _int_in("num_generations", params.get("num_generations", s.num_generations), 2, MAX_GENERATIONS)
    temperature = float(params.get("temperature", s.temperature))
    if not 0 < temperature <= 100:
        raise RequestError(f"parameter 'temperature' must be > 0 for sample_group (training samples at a "
                           f"positive temperature), got {temperature}")
    max_new = _int_in("max_completion_length", params.get("max_completion_length", s.max_completion_length),
                      1, _context(target.policy))
    question = params["question"]
    prompt = _question_prompt(target, question, max_new)
    answer, note = params.get("answer"), None
    if answer is None:
        answer = target.dataset_answer(question)
        if answer is None:
            try:
                answer = str(arith.evaluate(arith.parse(question)))
            except ValueError:
                note = "no answer given and none known for this question: every reward is 0"
    seed = _seed(params)
    gen = torch.Generator(device=target.device).manual_seed(seed)
    rewarder = target.get_rewarder() if answer is not None else None
    rec = sample_group(target.policy, target.reference, target.tokenizer, question, answer, num_generations=G,
                       temperature=temperature, top_p=s.top_p, max_new_tokens=max_new, supervision=s.reward,
                       scale_rewards=s.scale_rewards, rewarder=rewarder, generator=gen, step=target.step,
                       prompt=prompt)
    if note:
        rec["note"] = note
    rec["source"] = target.source(seed=seed, temperature=temperature, max_completion_length=max_new)
    return rec


# --------------------------------------------------------------------------------------- score
def _text_tokens(tokenizer, text: str) -> tuple[list[int], list[list[int]]]:
    """Token ids of `text` (no special tokens added) and each token's [start, end) character offsets."""
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [[int(a), int(b)] for a, b in enc["offset_mapping"]]
    except (NotImplementedError, ValueError, TypeError):  # a slow tokenizer: offsets from decoded lengths
        ids = sft.encode(tokenizer, text)
        offsets, pos = [], 0
        for tid in ids:
            n = len(tokenizer.decode([tid]))
            offsets.append([pos, min(len(text), pos + n)])
            pos += n
        return ids, offsets


def score(policy, reference, tokenizer, text: str, prompt: str = "", step: int | None = None) -> ScoreResult:
    """Per-token log-probabilities of `text` as a continuation of `prompt` under the policy and the
    reference (the models' own distributions, temperature 1; what the ONNX export computes), k3 KL and
    the policy's entropy. With an empty prompt the text's first token has nothing before it (no BOS is
    added, as in training) and is not scored: `tokens` and `offsets` start at the second token then."""
    if not text:
        raise RequestError("parameter 'text' is empty")
    _vocabulary(tokenizer, "prompt", prompt)
    _vocabulary(tokenizer, "text", text)
    p_ids = sft.encode(tokenizer, prompt) if prompt else []
    t_ids, offsets = _text_tokens(tokenizer, text)
    ids = p_ids + t_ids
    context = _context(policy)
    if len(ids) > context:
        raise RequestError(f"prompt and text are {len(ids)} tokens, longer than the model's context of "
                           f"{context} tokens")
    first = max(1, len(p_ids))  # the first scored position of the sequence
    if len(ids) <= first:
        raise RequestError("nothing to score: with an empty prompt the text needs at least two tokens")
    device = next(policy.parameters()).device
    prompt_t = torch.tensor([ids[:first]], dtype=torch.long, device=device)
    comp_t = torch.tensor([ids[first:]], dtype=torch.long, device=device)
    batch = rollout.Batch(prompt_t, torch.ones_like(prompt_t), comp_t, torch.ones_like(comp_t),
                          torch.zeros(1, dtype=torch.bool, device=device))
    with _EvalMode(policy):
        logp, entropy = rollout.token_logprobs(policy, batch, 1.0, with_entropy=True)
        ref_logp, _ = rollout.token_logprobs(reference, batch, 1.0)
    logp, entropy, ref_logp = logp[0].cpu(), entropy[0].cpu(), ref_logp[0].cpu()
    kl = algorithm.kl_k3(logp, ref_logp)
    skipped = first - len(p_ids)  # 1 when the text's first token is unscored
    return {
        "tokens": tokenizer.convert_ids_to_tokens(t_ids[skipped:]), "offsets": offsets[skipped:],
        "logp": _r6(logp), "ref_logp": _r6(ref_logp), "kl": _r6(kl), "entropy": _r6(entropy),
        "sequence_kl": round(float(kl.mean()), 6), "sum_logp": round(float(logp.sum()), 6),
        "sum_ref_logp": round(float(ref_logp.sum()), 6), "step": step,
    }


# --------------------------------------------------------------------------------------- compare
def compare(target: Target, params: dict) -> CompareResult:
    """Greedy (or sampled) completions of the same question from the policy and from the reference, each
    scored under both models (temperature 1), with per-token k3 KL and logp_policy − logp_ref."""
    tok = target.tokenizer
    max_new = _int_in("max_completion_length",
                      params.get("max_completion_length", target.settings.max_completion_length),
                      1, _context(target.policy))
    temperature = float(params.get("temperature", 0.0))
    if not 0 <= temperature <= 100:
        raise RequestError(f"parameter 'temperature' must be ≥ 0 (0: greedy), got {temperature}")
    question = params["question"]
    prompt = _question_prompt(target, question, max_new)
    seed = _seed(params)
    sides = {}
    with _EvalMode(target.policy):
        for name, model in (("policy", target.policy), ("reference", target.reference)):
            gen = torch.Generator(device=target.device).manual_seed(seed)
            batch = rollout.sample(model, [prompt], max_new_tokens=max_new, eos_id=tok.eos_token_id,
                                   pad_id=tok.pad_token_id, temperature=temperature, generator=gen)
            pol, _ = rollout.token_logprobs(target.policy, batch, 1.0)
            ref, _ = rollout.token_logprobs(target.reference, batch, 1.0)
            n = int(batch.lengths[0])
            pol, ref = pol[0, :n].cpu(), ref[0, :n].cpu()
            kl = algorithm.kl_k3(pol, ref)
            side = {"completion": tok.decode(batch.completion_ids[0, :n].tolist(), skip_special_tokens=True),
                    "tokens": tok.convert_ids_to_tokens(batch.completion_ids[0, :n].tolist()),
                    "truncated": bool(batch.truncated[0])}
            if name == "policy":
                side.update(logp=_r6(pol), ref_logp=_r6(ref))
            else:
                side.update(logp=_r6(ref), policy_logp=_r6(pol))
            side.update(kl=_r6(kl), logp_diff=_r6(pol - ref))
            sides[name] = (side, round(float(kl.mean()), 6) if n else 0.0)
    return {"question": question, "prompt": sft.prompt_text(question),
            "policy": sides["policy"][0], "reference": sides["reference"][0],
            "sequence_kl": {"policy": sides["policy"][1], "reference": sides["reference"][1]},
            "step": target.step, "source": target.source(seed=seed, temperature=temperature,
                                                         max_completion_length=max_new)}


# --------------------------------------------------------------------------------------- dispatch
def handle(target: Target, msg: dict[str, Any]) -> dict[str, Any]:
    """The result of one inspection request; raises RequestError on bad input."""
    params = params_of(msg)
    kind = msg["type"]
    if kind == protocol.SAMPLE_GROUP:
        return _sample_group(target, params)
    if kind == protocol.SCORE:
        result = score(target.policy, target.reference, target.tokenizer, params["text"], params.get("prompt", ""),
                       target.step)
        return {**result, "source": target.source()}
    return compare(target, params)


def answer(target: Target, msg: dict[str, Any]) -> dict[str, Any]:
    """`{"ok": true, "result": …}` or `{"ok": false, "error": …}`; never raises for a request's sake."""
    try:
        return {"ok": True, "result": handle(target, msg)}
    except RequestError as e:
        return {"ok": False, "error": str(e)}
    except torch.cuda.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return {"ok": False, "error": f"{msg['type']}: out of GPU memory (try fewer generations or tokens)"}
    except Exception as e:  # noqa: BLE001 - a request must never take the trainer down
        log.exception("request %s failed", msg.get("type"))
        return {"ok": False, "error": f"{msg['type']} failed: {type(e).__name__}: {e}"}


# --------------------------------------------------------------------------------------- checkpoints
def reference_dir(ckpt: Path) -> Path:
    """The reference that was in force for this checkpoint: its own ref/ after an iterative-RL reset, else
    the run's starting policy (step_000000), else the checkpoint itself (SFT checkpoints: the reference is
    only fixed when GRPO starts, so the policy is its own reference)."""
    ckpt = Path(ckpt)
    if (ckpt / "ref" / "config.json").is_file():
        return ckpt / "ref"
    start = ckpt.parent / "step_000000"
    if ckpt.name.startswith("sft_") or not (start / "config.json").is_file():
        return ckpt
    return start


def resolve_checkpoint(path: str | Path) -> tuple[Path, Path | None]:
    """(checkpoint dir, run dir or None) for a checkpoint directory or a run directory (its latest one)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"--checkpoint {path}: no such directory")
    if (p / "checkpoints").is_dir() or (p / "status.json").is_file():
        latest = latest_checkpoint(p)
        if latest is None:
            raise FileNotFoundError(f"--checkpoint {path}: the run has no complete checkpoint yet")
        return latest, p
    if not (p / "config.json").is_file():
        raise FileNotFoundError(f"--checkpoint {path}: not a checkpoint, model or run directory (no config.json)")
    run = p.parent.parent if p.parent.name == "checkpoints" and (p.parent.parent / "config.json").is_file() else None
    return p, run


def run_settings(run_dir: Path | None) -> Config:
    """The run's settings (for defaults: G, temperature, lengths, reward), or the defaults."""
    if run_dir is None:
        return Config()
    try:
        base = json.loads((run_dir / "config.json").read_text())
        known = {f for f in Config.__dataclass_fields__}
        return build_config({k: v for k, v in base.items() if k in known})
    except (OSError, json.JSONDecodeError, ConfigError, TypeError) as e:
        log.warning("cannot read %s/config.json (%s); using default settings", run_dir, e)
        return Config()


def load_target(path: str | Path, device: torch.device | None = None) -> tuple[Target, Path | None]:
    """Load a checkpoint's policy, its reference and its run's settings for answering requests."""
    ckpt, run_dir = resolve_checkpoint(path)
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    policy, tok = models.load(str(ckpt), 0, device)
    ref_path = reference_dir(ckpt)
    reference = policy if ref_path == ckpt else models.load(str(ref_path), 0, device)[0]
    policy.eval()
    reference.eval().requires_grad_(False)
    state = {}
    if (ckpt / "trainer_state.json").is_file():
        state = json.loads((ckpt / "trainer_state.json").read_text())
    where = "its own ref/ (iterative RL)" if ref_path.name == "ref" else (
        "the policy itself" if ref_path == ckpt else str(ref_path.name))
    target = Target(policy=policy, reference=reference, tokenizer=tok, settings=run_settings(run_dir),
                    step=state.get("step"), checkpoint=str(ckpt), phase=state.get("phase"),
                    reference_source=where)
    return target, run_dir


def serve(target: Target, stream: protocol.Stream, source: IO[str]) -> int:
    """Answer requests from `source`, one per line, until it closes or a `stop` request arrives."""
    for line in source:
        if not line.strip():
            continue
        try:
            msg = protocol.parse_request(line)
        except ValueError as e:
            stream.send(protocol.RESPONSE, id=None, ok=False, error=str(e))
            continue
        kind = msg["type"]
        if kind == protocol.STOP:
            stream.send(protocol.RESPONSE, id=msg.get("id"), ok=True, result={"action": kind})
            break
        if kind in protocol.INSPECT_TYPES:
            stream.send(protocol.RESPONSE, id=msg.get("id"), **answer(target, msg))
        elif kind in protocol.CONTROL_TYPES:
            stream.send(protocol.RESPONSE, id=msg.get("id"), ok=False,
                        error=f"{kind!r}: serve answers requests about a checkpoint; there is no training to control")
        else:
            stream.send(protocol.RESPONSE, id=msg.get("id"), ok=False,
                        error=f"unknown request type {kind!r} (serve answers {', '.join(protocol.INSPECT_TYPES)}, stop)")
    return 0
