"""Reward tests: `python -m grpo check-rewards FILE --set reward_funcs=…` runs saved cases through the current
reward functions, called as training calls them (rewards.py), and says which now disagree with the reward the
user said each case should get. How a suspected reward hack becomes a regression test.

FILE is JSONL, one case a line (docs/trainer.md, "Reward tests"):
  completion (string, required)   the completion text
  expected (number, required)     the reward it should get: the weighted sum of reward_funcs (or the
                                  reward_function's value, or the verifier's 1/0)
  question, answer                the question and its reference answer (the verifier's; also passed as
                                  dataset columns)
  prompt                          what the functions get as the prompt: a string or a list of chat messages
                                  (then the completion is passed as [{"role": "assistant", ...}]); default:
                                  the question
  completion_ids                  token ids; default: the settings' model's tokenizer on the completion, then
                                  EOS unless `truncated` (training's completion_ids end with EOS)
  truncated                       the completion was cut off at max_completion_length (no EOS); default false
  completion_tokens               the completion's token strings as a group record logs them (`tokens[i].text`):
                                  its exact ids (EOS and all) through the tokenizer's vocabulary, before the above
  rewards                         {function: value} each function gave when the case was saved (reported
                                  beside today's values)
  tolerance                       this case's allowed |reward − expected| (default: --tolerance)
  step                            trainer_state.global_step the functions see (default 0)
  note                            free text
  any other key                   a dataset column, passed as one (e.g. `solution`)
A line that is not such a case is skipped and counted; the exit status is 0 when every case agrees, 1 when
some disagree, 2 for a bad file or bad settings (or a file with no usable case).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Config
from .rewards import Rewarder

# keys of a case that are not dataset columns
CASE_KEYS = ("completion", "expected", "prompt", "completion_ids", "completion_tokens", "truncated", "rewards", "tolerance",
             "step", "note")
MAX_FILE_BYTES = 64 << 20


@dataclass
class Outcome:
    line: int
    expected: float
    reward: float
    ok: bool
    components: dict[str, float | None] = field(default_factory=dict)
    saved: dict[str, Any] = field(default_factory=dict)  # the case's `rewards`
    errors: list[str] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "ok": self.ok, "expected": self.expected, "reward": self.reward,
                "components": self.components, "saved": self.saved, "errors": self.errors,
                **({"note": self.note} if self.note else {})}


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_case(obj: Any) -> str | None:
    """Why `obj` is not a reward test case (None: it is one)."""
    if not isinstance(obj, dict):
        return "not a JSON object"
    if not isinstance(obj.get("completion"), str):
        return "no 'completion' string"
    if not _number(obj.get("expected")):
        return "no finite number 'expected'"
    if "prompt" in obj and not isinstance(obj["prompt"], (str, list)):
        return "'prompt' is neither a string nor a list of messages"
    ids = obj.get("completion_ids")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(t, int) and not isinstance(t, bool)
                                                              for t in ids)):
        return "'completion_ids' is not a list of whole numbers"
    toks = obj.get("completion_tokens")
    if toks is not None and not (isinstance(toks, list) and all(isinstance(t, str) for t in toks)):
        return "'completion_tokens' is not a list of strings"
    if "truncated" in obj and not isinstance(obj["truncated"], bool):
        return "'truncated' is not true or false"
    if "tolerance" in obj and not (_number(obj["tolerance"]) and obj["tolerance"] >= 0):
        return "'tolerance' is not a number ≥ 0"
    if "step" in obj and not (isinstance(obj["step"], int) and not isinstance(obj["step"], bool)):
        return "'step' is not a whole number"
    if "answer" in obj and obj["answer"] is not None and not isinstance(obj["answer"], str):
        return "'answer' is neither a string nor null"
    if "rewards" in obj and not isinstance(obj["rewards"], dict):
        return "'rewards' is not an object"
    return None


def read_cases(path: str | Path) -> tuple[list[tuple[int, dict]], dict[str, int]]:
    """The file's cases as (line number, case) and its bad lines counted by reason. OSError/ValueError for a
    file that cannot be read at all."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: not a file")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"{p}: over {MAX_FILE_BYTES >> 20} MB; not a reward test file")
    cases, bad = [], {}
    for n, line in enumerate(p.read_bytes().split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            why = "not JSON"
        else:
            why = check_case(obj)
        if why is None:
            cases.append((n, obj))
        else:
            bad[why] = bad.get(why, 0) + 1
    return cases, bad


class Checker:
    """The current reward functions of `cfg`, as training calls them, on saved cases."""

    def __init__(self, cfg: Config, run_dir: str | Path | None = None):
        from . import tasks, verify

        try:
            task = tasks.load(cfg, run_dir)
        except (OSError, ValueError):  # the run's data is not here: the verifier's defaults
            task = tasks.Task()
        self.cfg = cfg
        self.rewarder = Rewarder(verify.resolve(cfg.verifier, task.verifier), "outcome", cfg.reward_function, task,
                                 run_dir, verify.fallback(cfg.answer_fallback, task), reward_funcs=cfg.reward_funcs,
                                 reward_weights=cfg.reward_weights)
        self._tokenizer = None

    def tokenizer(self):
        if self._tokenizer is None:
            from . import models

            if self.cfg.model == models.BUILTIN:
                self._tokenizer = models.char_tokenizer()
            else:
                from transformers import AutoTokenizer

                self._tokenizer = AutoTokenizer.from_pretrained(self.cfg.model)
        return self._tokenizer

    def run(self, line: int, case: dict, tolerance: float) -> Outcome:
        question = case.get("question") if isinstance(case.get("question"), str) else ""
        columns = {k: v for k, v in case.items() if k not in CASE_KEYS}
        ids = case.get("completion_ids")
        if ids is None and any(f.fn is not None for f in self.rewarder.funcs):
            tok = self.tokenizer()
            if case.get("completion_tokens") is not None:  # a logged completion's own tokens: its exact ids
                ids = tok.convert_tokens_to_ids(case["completion_tokens"])
            else:  # text re-tokenized; special tokens the decoded text dropped cannot come back
                ids = tok(case["completion"], add_special_tokens=False)["input_ids"]
                if not case.get("truncated") and tok.eos_token_id is not None:
                    ids = ids + [tok.eos_token_id]  # as training passes them: a finished completion ends with EOS
        scored = self.rewarder([question], [case["completion"]], [case.get("answer")],
                               prompts=[case.get("prompt", question)], completion_ids=[ids or []],
                               columns=[columns], step=int(case.get("step", 0)), max_steps=self.cfg.max_steps)
        reward = float(scored.rewards[0])
        tol = float(case.get("tolerance", tolerance))
        ok = math.isfinite(reward) and abs(reward - float(case["expected"])) <= tol
        return Outcome(line, float(case["expected"]), reward, ok, {k: v[0] for k, v in scored.components.items()},
                       dict(case.get("rewards") or {}), list(scored.errors), str(case.get("note") or ""))


def check_file(path: str | Path, cfg: Config, tolerance: float = 1e-6,
               run_dir: str | Path | None = None) -> dict[str, Any]:
    """Every case of `path` under `cfg`'s reward functions (the settings of `run_dir`, whose user code is
    checked as a shared run's): {cases, agree, disagree, skipped, bad, results}."""
    cases, bad = read_cases(path)
    checker = Checker(cfg, run_dir)
    results = [checker.run(n, c, tolerance) for n, c in cases]
    return {"file": str(path), "reward_funcs": checker.rewarder.names, "cases": len(results),
            "agree": sum(r.ok for r in results), "disagree": sum(not r.ok for r in results),
            "skipped": sum(bad.values()), "bad": bad, "results": [r.as_dict() for r in results]}


def describe(report: dict[str, Any]) -> str:
    """The report in words: one line per disagreeing case, then the counts."""
    lines = []
    for r in report["results"]:
        if r["ok"]:
            continue
        parts = ", ".join(f"{k}={'none' if v is None else f'{v:g}'}" for k, v in r["components"].items())
        saved = ", ".join(f"{k}={v}" for k, v in r["saved"].items())
        lines.append(f"line {r['line']}: reward {r['reward']:g}, expected {r['expected']:g}"
                     + (f" ({parts})" if parts else "") + (f"; saved with {saved}" if saved else "")
                     + (f"; errors: {'; '.join(r['errors'])}" if r["errors"] else "")
                     + (f" — {r['note']}" if r.get("note") else ""))
    skipped = "" if not report["skipped"] else (
        f"; skipped {report['skipped']} bad lines ({', '.join(f'{n} {why}' for why, n in report['bad'].items())})")
    lines.append(f"{report['agree']} of {report['cases']} cases agree, {report['disagree']} disagree{skipped}")
    return "\n".join(lines)
