"""The record contract: every record the trainer writes into a run directory or on its stdout, and every
request it reads on stdin, defined once (protocol version 1).

These TypedDicts are the single definition. docs/run-directory.md explains them in words; the extension's
TypeScript types and the schema its runtime guards check (src/shared/generated/protocol.ts) are generated from
`schema()` below by `npm run gen:protocol` (scripts/gen-protocol.mjs loads this file by path, so it must need
nothing but the standard library), and src/shared/records.ts re-exports them with the guards; `validate()` checks a record against the same schema on the Python side (tests).

Conventions, so that the generator can read everything from the annotations:
- `NotRequired[...]`: a reader must tolerate the field's absence (older runs, conditional fields).
- `Annotated[T, "words"]`: the words are the field's documentation (copied into the TypeScript).
- `Annotated[T, Default(x)]` (with NotRequired): readers see `x` when the field is absent.
- `Annotated[list[...], Len(of, noun)]`: the list has one entry per entry of the sibling list `of`;
  `Paired(other)`: entry i has as many values as entry i of the sibling list of lists `other`.
- `float` is a finite number; a value that may be NaN or infinite is `float | None` (JSON has no NaN, so
  `protocol.to_json` writes null). `int` is a whole number.
- Every record tolerates unknown extra fields (forward compatibility); `EXTRA` types them where all values
  share a type.

Adding a field: add it here (NotRequired unless every writer always writes it), run `npm run gen:protocol`,
describe it in docs/run-directory.md. A new event kind: a TypedDict deriving from `RunEvent` with
`kind: Literal["…"]`, added to `EVENT_KINDS`' Literal and to `EVENTS`.
"""

import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NotRequired, Required, TypedDict, Union, get_args, get_origin

PROTOCOL_VERSION = 1


@dataclass(frozen=True)
class Default:
    value: Any


@dataclass(frozen=True)
class Len:
    of: str
    noun: str
    unit: str = "values"


@dataclass(frozen=True)
class Paired:
    other: str


# --------------------------------------------------------------------------------------------- enums
RunState = Literal["running", "paused", "stopped", "finished", "failed"]
Phase = Literal["setup", "sft", "grpo", "done"]
EventKind = Literal["phase", "eval", "decontamination", "checkpoint", "ref_reset", "warning", "error", "control",
                    "resume", "sft_cache"]
ControlType = Literal["pause", "resume", "stop", "save_checkpoint"]
InspectType = Literal["sample_group", "score", "compare", "replay", "rescore"]
MessageType = Literal["started", "status", "progress", "metrics", "samples", "event", "response"]
# a group's kind: its rewards differ (it carries policy gradient), or all are equal and every answer is right,
# none is, or the answers are mixed under a reward that ignores them
GroupKind = Literal["mixed", "all_correct", "all_wrong", "no_signal_other"]
Verdict = Literal["healthy", "wasteful", "dead", "bad_settings"]

# name → the Literal; TypeScript gets `RUN_STATES` (the values) and `RunState` (their type) for each
ENUMS: dict[str, Any] = {"RunState": RunState, "Phase": Phase, "EventKind": EventKind,
                         "ControlType": ControlType, "InspectType": InspectType, "MessageType": MessageType,
                         "GroupKind": GroupKind, "Verdict": Verdict}

RUN_STATES: tuple[str, ...] = get_args(RunState)
PHASES: tuple[str, ...] = get_args(Phase)
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)
CONTROL_TYPES: tuple[str, ...] = get_args(ControlType)
INSPECT_TYPES: tuple[str, ...] = get_args(InspectType)
MESSAGE_TYPES: tuple[str, ...] = get_args(MessageType)
GROUP_KINDS: tuple[str, ...] = get_args(GroupKind)
VERDICTS: tuple[str, ...] = get_args(Verdict)

Seconds = Annotated[float, "unix seconds"]
Number = float | None  # NaN/inf are written as null


# ---------------------------------------------------------------------------------- status.json
class RunStatus(TypedDict):
    """status.json: the run's state, rewritten atomically on every change."""

    protocol: int
    state: RunState
    phase: Phase
    pid: Annotated[int | None, "the trainer's process id (for re-attaching)"]
    host: NotRequired[Annotated[str, "the trainer's host name (a pid means nothing on another host)"]]
    proc_start: NotRequired[Annotated[int | None, "the trainer's start time, clock ticks after boot (/proc/PID/stat field 22; null off Linux)"]]
    token: NotRequired[Annotated[str, "random, new at every start or resume: with host and proc_start it tells the trainer from a process that reuses its pid"]]
    step: Annotated[int, "last completed GRPO step"]
    max_steps: int
    sft_step: NotRequired[int]
    sft_steps: NotRequired[int]
    grpo_elapsed: NotRequired[Annotated[float, "seconds of GRPO training so far, paused time excluded; a resumed run's `elapsed` continues from it"]]
    started_at: NotRequired[Annotated[float | None, Default(None), "unix seconds"]]
    updated_at: NotRequired[Annotated[float | None, Default(None), "unix seconds"]]
    ended_at: NotRequired[Annotated[float | None, Default(None), "set when state leaves running/paused"]]
    last_checkpoint: NotRequired[Annotated[str | None, Default(None), "relative to the run directory"]]
    error: NotRequired[Annotated[str | None, Default(None), "a one-line message when state is failed"]]


# -------------------------------------------------------------------------------- metrics.jsonl
# Keys with '/' cannot be class attributes, hence the functional form. Every key but `step` is optional
# for readers; the trainer writes all of them on every logged step except the two marked "only".
# pass@k / maj@k for the default eval_k (1, 4, 8, 16); other k values are written the same way (eval/pass@K)
SAMPLED_EVAL_METRICS = tuple(f"eval/{m}@{k}" for m in ("pass", "maj") for k in (1, 4, 8, 16))
# The signal ledger (ledger.py): where every sampled completion token of the step went, as disjoint categories
# taken in this order (a token counts in the first that holds); they sum to `ledger/tokens`. With μ > 1 the
# clip categories are means over the μ updates (so counts may be fractional).
LEDGER_METRICS: dict[str, str] = {
    "ledger/tokens": "completion tokens sampled in the step (dynamic sampling's discarded groups included)",
    "ledger/filtered": "in groups dynamic sampling sampled and discarded (no signal)",
    "ledger/truncated_masked": "in truncated completions that mask_truncated_completions drops from the loss",
    "ledger/no_signal_correct": "in groups whose rewards are all equal and every answer is right (advantage 0)",
    "ledger/no_signal_wrong": "in groups whose rewards are all equal and no answer is right (advantage 0)",
    "ledger/no_signal_other": "in groups whose rewards are all equal, answers mixed (a reward that ignores them)",
    "ledger/masked_other": "dropped from the policy gradient by top_entropy_quantile's token mask",
    "ledger/clipped_low": "ratio < 1−ε with a negative advantage: clipped, no policy gradient",
    "ledger/clipped_high": "ratio > 1+ε_high with a positive advantage: clipped, no policy gradient",
    "ledger/effective": "carried policy gradient",
    "groups/mixed": "groups whose rewards differ (they carry the signal)",
    "groups/all_correct": "groups with all rewards equal, every answer right",
    "groups/all_wrong": "groups with all rewards equal, no answer right",
    "groups/no_signal_other": "groups with all rewards equal, answers mixed",
    "groups/filtered": "groups dynamic sampling discarded (not in the update)",
    "groups/sampled": "groups sampled in the step (the update's and the discarded)",
    **{f"grad_share/{k}": f"share of the step's gradient on token log-probs (Σ|∂L/∂log π|) from {w}"
       for k, w in (("mixed", "mixed groups"), ("all_correct", "all-correct groups (the KL term only)"),
                    ("all_wrong", "all-wrong groups (the KL term only)"),
                    ("no_signal_other", "other equal-reward groups (the KL term only)"),
                    ("len_0_25", "completions up to 25% of max_completion_length long"),
                    ("len_25_50", "completions 25–50% of max_completion_length long"),
                    ("len_50_75", "completions 50–75% of max_completion_length long"),
                    ("len_75_100", "completions over 75% of max_completion_length long"))},
}
LEDGER_TOKENS = tuple(k for k in LEDGER_METRICS if k.startswith("ledger/") and k != "ledger/tokens")
MetricsRow = TypedDict("MetricsRow", {
    "step": Required[Annotated[int, "GRPO optimizer step (1-based)"]],
    "time": Annotated[Number, "unix seconds when the step ended"],
    "elapsed": Annotated[Number, "seconds since the GRPO phase started (excluding paused time)"],
    "reward/mean": Annotated[Number, "mean reward of all completions in the step"],
    "reward/std": Annotated[Number, "std of the rewards of all completions in the step"],
    "accuracy": Annotated[Number, "fraction of completions whose final answer is right"],
    "frac_reward_zero_std": Annotated[Number, "fraction of groups whose rewards were all equal (no signal)"],
    "kl": Annotated[Number, "mean k3 KL to the reference over completion tokens"],
    "clip_ratio/low": Annotated[Number, "fraction of tokens clipped at 1−ε (negative advantage)"],
    "clip_ratio/high": Annotated[Number, "fraction of tokens clipped at 1+ε_high (positive advantage)"],
    "clip_ratio/region": Annotated[Number, "fraction of tokens clipped either way (low + high)"],
    "entropy": Annotated[Number, "mean per-token entropy of the policy over completion tokens"],
    "loss": Annotated[Number, "the GRPO loss (mean over the μ updates)"],
    "grad_norm": Annotated[Number, "the gradient norm before clipping"],
    "learning_rate": Annotated[Number, "the learning rate used for the step"],
    "completion_length/mean": Annotated[Number, "mean completion length in tokens"],
    "completion_length/max": Annotated[Number, "longest completion in tokens"],
    "truncated_ratio": Annotated[Number, "fraction of completions that hit max_completion_length without EOS"],
    "advantage/mean": Annotated[Number, "over completion tokens"],
    "advantage/std": Annotated[Number, "over completion tokens"],
    "advantage/min": Annotated[Number, "over completion tokens"],
    "advantage/max": Annotated[Number, "over completion tokens"],
    "time/generate": Annotated[Number, "seconds spent sampling and rewarding"],
    "time/train": Annotated[Number, "seconds spent scoring and updating"],
    "tokens_per_second": Annotated[Number, "completion tokens sampled per second of the whole step"],
    "process_reward/mean": Annotated[Number, "only with reward = process: mean step reward over all steps of all completions"],
    "eval/accuracy": Annotated[Number, "only on steps where an evaluation ran: greedy held-out accuracy"],
    **{key: Annotated[Number, "only on steps with a sampled evaluation: held-out " + key[len("eval/"):]]
       for key in SAMPLED_EVAL_METRICS},
    **{key: Annotated[Number, words] for key, words in LEDGER_METRICS.items()},
}, total=False)
MetricsRow.__doc__ = "One metrics.jsonl row per logged GRPO step: `step` plus numbers (NaN/inf are null)."
# metrics the trainer writes only under a condition (named in their documentation)
CONDITIONAL_METRICS = ("process_reward/mean", "eval/accuracy", *SAMPLED_EVAL_METRICS)


# -------------------------------------------------------------------------------- samples.jsonl
PerToken = Annotated[list[float], Len("text", "tokens")]
PerCompletion = Len("completions", "completions", "entries")


class TokenArrays(TypedDict):
    """Per-token arrays of one completion; every array has one entry per token."""

    text: Annotated[list[str], "the completion's tokens as strings"]
    logp: PerToken
    old_logp: PerToken
    ref_logp: PerToken
    kl: Annotated[list[float], Len("text", "tokens"), "k3 KL to the reference"]
    advantage: PerToken
    entropy: PerToken


class Source(TypedDict):
    """Where an inspection result comes from."""

    checkpoint: Annotated[str | None, "the checkpoint's path; null for a live trainer"]
    step: int | None
    phase: NotRequired[str | None]
    reference: NotRequired[Annotated[str, "where the reference comes from, in words"]]
    seed: NotRequired[int]
    temperature: NotRequired[float]
    max_completion_length: NotRequired[int]


class GroupRecord(TypedDict):
    """One whole group: a samples.jsonl record, or what `sample_group` answers (plus `source`). A sequence-level
    group (no `tokens`, no `truncated`) has only what a completions table keeps: text, rewards, advantages."""

    step: NotRequired[int]
    question: str
    answer: str | None
    prompt: Annotated[str, "the prompt text the completions continue"]
    completions: list[str]
    rewards: Annotated[list[float], PerCompletion, "outcome (or total) reward per completion"]
    correct: NotRequired[Annotated[list[bool], PerCompletion, "whether the final answer is right"]]
    advantages: Annotated[list[float], PerCompletion, "sequence-level advantage per completion"]
    truncated: NotRequired[Annotated[list[bool], PerCompletion,
                                     "hit max_completion_length without EOS; absent in sequence-level groups "
                                     "(e.g. imported from TRL's completion tables)"]]
    tokens: NotRequired[Annotated[list[TokenArrays], PerCompletion,
                                  "per-token arrays; absent in sequence-level groups (e.g. imported from TRL's "
                                  "completion tables: per-token values are scored on demand)"]]
    step_rewards: NotRequired[Annotated[list[list[float]], PerCompletion, "per reasoning step, per completion"]]
    step_ends: NotRequired[Annotated[list[list[int]], PerCompletion, Paired("step_rewards"),
                                     "0-based token index where each step ends"]]
    kind: NotRequired[Annotated[GroupKind, "mixed (rewards differ: the group carries signal), all_correct, all_wrong, "
                                           "no_signal_other; readers derive it from rewards/correct when absent"]]
    reward_functions: NotRequired[Annotated[dict[str, list[float | None]],
                                            "with several reward functions (reward_funcs, or TRL's): each one's value "
                                            "per completion by its name; null where it did not apply (None) or failed"]]
    source: NotRequired[Source]
    reward_errors: NotRequired[Annotated[list[str], "sample_group: the reward function's errors"]]
    note: NotRequired[Annotated[str, "sample_group: why every reward is 0, when it is"]]


# ------------------------------------------------------------------------------- questions.jsonl
class QuestionsRow(TypedDict):
    """One questions.jsonl row: how each question fared, for the prompt atlas. A GRPO step writes one row for
    its groups (`train`: right answers of G); each held-out evaluation one row (`eval`: greedy, 0 or 1)."""

    step: int
    source: Literal["train", "eval"]
    questions: list[str]
    passed: Annotated[list[int], Len("questions", "questions"), "right answers among `samples` for each question"]
    samples: Annotated[int, "completions per question: G (train) or 1 (greedy eval)"]


# ------------------------------------------------------------------------------------ preflight
class PreflightProblem(TypedDict):
    """One thing preflight found, with its cause and a concrete change."""

    code: Annotated[str, "truncation, no_answer, all_wrong, all_correct, no_signal, long_prompts, reward_errors, …"]
    severity: Annotated[Literal["dead", "wasteful", "note"], "dead: the run cannot learn; wasteful: much of each "
                                                            "step carries no signal; note: worth knowing"]
    message: Annotated[str, "what was measured and why it matters"]
    change: Annotated[str, "the concrete change that addresses it"]


class PreflightReport(TypedDict):
    """`python -m grpo preflight --json`: a verdict on the settings before training, from the start policy."""

    verdict: Verdict
    exit_code: Annotated[int, "0 healthy, 1 predicted dead or wasteful, 2 bad settings"]
    problems: list[PreflightProblem]
    error: NotRequired[Annotated[str, "bad_settings: the settings error (it names the setting)"]]
    start: NotRequired[Annotated[str, "where the start policy came from: the SFT cache, SFT trained now, the model"]]
    questions: NotRequired[int]
    num_generations: NotRequired[int]
    signal_share: NotRequired[Annotated[float, "predicted share of groups whose rewards differ"]]
    groups: NotRequired[Annotated[dict[str, int], "groups by kind (mixed, all_correct, all_wrong, no_signal_other)"]]
    truncated_ratio: NotRequired[float]
    truncated_without_answer: NotRequired[Annotated[float, "share of completions truncated before any answer"]]
    prompts_over_limit: NotRequired[Annotated[int, "task prompts checked that are longer than max_prompt_length"]]
    prompts_checked: NotRequired[int]
    reward: NotRequired[Annotated[dict[str, float], "mean, std, min, max of the sampled rewards"]]
    accuracy: NotRequired[float]
    completion_length: NotRequired[Annotated[dict[str, float], "tokens: mean, p10, p50, p90, max"]]
    reward_errors: NotRequired[int]
    seconds_per_step: NotRequired[Annotated[float, "estimated for the full run: sampling and one update at "
                                                   "questions_per_step × G"]]
    estimated_total_seconds: NotRequired[float]
    peak_memory_mb: NotRequired[Annotated[float | None, "estimated peak memory of training (CUDA: allocated; CPU: "
                                                        "resident set growth); null where unknown"]]
    seconds: NotRequired[Annotated[float, "preflight's own wall-clock"]]


# -------------------------------------------------------------------------------- events.jsonl
class RunEvent(TypedDict):
    """One events.jsonl row: `kind`, `time`, `step` plus fields of its kind. Unknown kinds are kept."""

    kind: str
    time: Seconds
    step: Annotated[int, "GRPO step; 0 during setup and SFT"]


class PhaseEvent(RunEvent):
    kind: Literal["phase"]
    phase: Phase
    steps: NotRequired[Annotated[int, "on entering sft: the number of SFT steps"]]
    sft_accuracy: NotRequired[Annotated[Number, "on entering grpo after SFT: held-out greedy accuracy of the SFT policy"]]
    state: NotRequired[Annotated[RunState, "on done: how the run ended"]]


class EvalEvent(RunEvent):
    kind: Literal["eval"]
    accuracy: Annotated[Number, "greedy held-out accuracy"]
    n: Annotated[int, "held-out questions evaluated"]
    samples: NotRequired[Annotated[int, "sampled evaluations only (the GRPO start, the end, every eval_sampled_steps): completions per question"]]
    temperature: NotRequired[Annotated[Number, "sampled evaluations only: the sampling temperature"]]
    pass_at_k: NotRequired[Annotated[dict[str, float], "sampled evaluations only: unbiased pass@k by k (a string key)"]]
    maj_at_k: NotRequired[Annotated[dict[str, float], "sampled evaluations only: maj@k by k (a string key)"]]


class DecontaminationEvent(RunEvent):
    """At start: training questions sharing a 10-gram with (short ones: equal to) a held-out question."""

    kind: Literal["decontamination"]
    checked: Annotated[int, "training rows checked (0 for the built-in generator)"]
    eval_questions: Annotated[int, "held-out questions"]
    matched: Annotated[int, "training rows that share a 10-gram with a held-out question"]
    action: Annotated[str, "removed, reported, or never generated (the built-in generator skips such questions)"]
    n: Annotated[int, "the n of the n-grams (10)"]
    examples: Annotated[list[str], "up to 3 matched questions"]


class CheckpointEvent(RunEvent):
    kind: Literal["checkpoint"]
    path: Annotated[str, "relative to the run directory"]


class RefResetEvent(RunEvent):
    """The reference was replaced by the current policy (iterative RL)."""

    kind: Literal["ref_reset"]


class WarningEvent(RunEvent):
    kind: Literal["warning"]
    message: str
    code: NotRequired[Annotated[str, "bad_rows, long_prompts, reward_error, nonfinite_loss, onnx_export, …"]]
    count: NotRequired[int]


class ErrorEvent(RunEvent):
    """The run failed."""

    kind: Literal["error"]
    message: str


class ControlEvent(RunEvent):
    """A control request was obeyed."""

    kind: Literal["control"]
    action: ControlType


class ResumeEvent(RunEvent):
    """The run was resumed from the checkpoint at `step`."""

    kind: Literal["resume"]
    dropped_rows: Annotated[int, "metrics/samples rows after the checkpoint that were dropped"]


class SftCacheEvent(RunEvent):
    """The SFT start and the user cache (sftcache.py): reused, trained and stored, or not cached."""

    kind: Literal["sft_cache"]
    action: Annotated[str, "hit: SFT skipped, its end read from the cache; miss: SFT trains (then stored); "
                           "stored: the start written to the cache; off: not cached (see reason)"]
    path: Annotated[str, "the cache entry's folder (off: the cache folder)"]
    reason: NotRequired[Annotated[str, "off: why the start is not cached"]]


EVENTS: dict[str, type] = {"phase": PhaseEvent, "eval": EvalEvent, "decontamination": DecontaminationEvent,
                           "checkpoint": CheckpointEvent,
                           "ref_reset": RefResetEvent, "warning": WarningEvent, "error": ErrorEvent,
                           "control": ControlEvent, "resume": ResumeEvent, "sft_cache": SftCacheEvent}


# ------------------------------------------------------------------------------- inspection results
class ScoreResult(TypedDict):
    """`score`: `text` as a continuation of `prompt` under policy and reference."""

    tokens: list[str]
    offsets: Annotated[list[tuple[int, int]], Len("tokens", "tokens"), "[start, end) code-point offsets into text"]
    logp: Annotated[list[float], Len("tokens", "tokens")]
    ref_logp: Annotated[list[float], Len("tokens", "tokens")]
    kl: Annotated[list[float], Len("tokens", "tokens")]
    entropy: Annotated[list[float], Len("tokens", "tokens")]
    sequence_kl: Annotated[float, "mean k3 KL"]
    sum_logp: float
    sum_ref_logp: float
    step: Annotated[int | None, "null: a model directory that is not a training checkpoint"]
    source: NotRequired[Source]


class CompareSide(TypedDict):
    """One side of `compare`: a completion and its per-token numbers under both models."""

    completion: str
    tokens: list[str]
    logp: Annotated[list[float], Len("tokens", "tokens"), "under the model that wrote this side"]
    kl: Annotated[list[float], Len("tokens", "tokens")]
    logp_diff: Annotated[list[float], Len("tokens", "tokens"), "log π_θ − log π_ref per token"]
    truncated: NotRequired[bool]


class PolicySide(CompareSide):
    ref_logp: Annotated[list[float], Len("tokens", "tokens"), "the reference's log-probs"]


class ReferenceSide(CompareSide):
    policy_logp: Annotated[list[float], Len("tokens", "tokens"), "the policy's log-probs"]


class SequenceKL(TypedDict):
    policy: float
    reference: float


class CompareResult(TypedDict):
    """`compare`: the policy's and the reference's completion of one question."""

    question: str
    prompt: str
    policy: PolicySide
    reference: ReferenceSide
    sequence_kl: SequenceKL
    step: NotRequired[int | None]
    source: NotRequired[Source]


class ReplayCompletion(TypedDict):
    """One completion of a replayed step's batch (the same in every variant)."""

    group: Annotated[int, "which question of the step (index into ReplayResult.questions)"]
    text: str
    tokens: list[str]
    reward: float
    advantage: Annotated[float, "the sequence-level advantage the run trained with"]
    truncated: bool


class ReplayVariant(TypedDict):
    """One replay of the step: the run's own settings (`settings` empty) or an alternative objective."""

    name: Annotated[str, "'run' for the run's own settings, else the changed settings, e.g. 'loss_type=dr_grpo'"]
    settings: Annotated[dict[str, Any], "the settings this variant changes (empty: the run's own)"]
    loss: Annotated[float, "the loss (mean over the μ updates)"]
    grad_norm: Annotated[float, "the gradient norm before clipping (mean over the μ updates)"]
    delta_logp: Annotated[list[list[float]], "per completion, per token: log π after the update − before it"]
    delta_seq: Annotated[list[float], "per completion: the change of the whole sequence's log-probability"]
    ledger: Annotated[dict[str, float], "the step's signal ledger under this variant (LEDGER_METRICS' keys)"]
    reproduced: NotRequired[Annotated[float, "the run's own settings only: max |log π after − what the run logged|"]]


class ReplayResult(TypedDict):
    """`replay` / `python -m grpo replay`: one logged step re-applied from the state before it, under the run's
    settings and under alternatives, each from the same state (replay.py)."""

    step: int
    run_dir: str
    questions: list[str]
    completions: list[ReplayCompletion]
    variants: list[ReplayVariant]
    seconds: Annotated[float, "wall-clock time of the whole replay"]


class RescoreResult(TypedDict):
    """`rescore`: an edited completion re-scored as training would score it: its reward by the run's rewarder, the
    group's advantages recomputed with it in place (the training function), and its per-token numbers as a
    continuation of the question's training prompt (temperature 1, as `score`)."""

    question: str
    answer: Annotated[str | None, "the answer rewarded against (null: none known, every reward is 0)"]
    prompt: Annotated[str, "the training prompt the completion was scored after"]
    completion: str
    index: Annotated[int, "the edited completion's place in the group"]
    reward: Annotated[float, "the edited completion's reward (the run's verifier or reward function)"]
    correct: Annotated[bool, "whether its final answer is right (the verifier's verdict)"]
    advantage: Annotated[float, "its sequence-level advantage in the group (advantages[index])"]
    rewards: Annotated[list[float], "the whole group's rewards, the edit in place (one completion without a group)"]
    advantages: Annotated[list[float], Len("rewards", "completions"),
                          "the whole group's sequence-level advantages by the training function, the edit in place"]
    step_rewards: NotRequired[Annotated[list[float], "per reasoning step of the edited completion, where the task "
                                                     "checks the question step by step (arith)"]]
    step_ends: NotRequired[Annotated[list[int], Len("step_rewards", "steps"),
                                     "0-based index into `tokens` where each step ends"]]
    tokens: list[str]
    offsets: Annotated[list[tuple[int, int]], Len("tokens", "tokens"),
                       "[start, end) code-point offsets into completion"]
    logp: Annotated[list[float], Len("tokens", "tokens"), "log π_θ per token (temperature 1)"]
    ref_logp: Annotated[list[float], Len("tokens", "tokens"), "log π_ref per token"]
    kl: Annotated[list[float], Len("tokens", "tokens"), "k3 KL per token"]
    ratio: Annotated[list[float], Len("tokens", "tokens"), "π_θ/π_ref per token"]
    token_advantages: Annotated[list[float], Len("tokens", "tokens"),
                                "the advantage each token would be trained with (process supervision: per token)"]
    sequence_kl: Annotated[float, "mean k3 KL"]
    step: Annotated[int | None, "null: a model directory that is not a training checkpoint"]
    source: NotRequired[Source]
    reward_errors: NotRequired[Annotated[list[str], "the reward function's errors"]]
    note: NotRequired[Annotated[str, "why every reward is 0, when it is"]]


# ----------------------------------------------------------------------------------- stdin requests
class SampleGroupParams(TypedDict, total=False):
    question: Required[str]
    answer: str | None
    num_generations: Annotated[int, "2–256; default the run's G"]
    temperature: float
    max_completion_length: int
    seed: int


class ScoreParams(TypedDict, total=False):
    text: Required[str]
    prompt: str


class CompareParams(TypedDict, total=False):
    question: Required[str]
    max_completion_length: int
    temperature: Annotated[float, "default 0: greedy"]
    seed: int


class ReplayParams(TypedDict, total=False):
    step: Required[Annotated[int, "a step with a replay record (replay/step_N/, written at log_samples_steps)"]]
    variants: Annotated[list[dict[str, Any]], "settings to change, one alternative each (e.g. "
                                              "{\"loss_type\": \"dr_grpo\"}); the run's own settings replay first"]


class RescoreParams(TypedDict, total=False):
    question: Required[str]
    completion: Required[Annotated[str, "the edited completion"]]
    group: Annotated[list[str], "the group's completions (2–256); the one at `index` is replaced by `completion`"]
    index: Annotated[int, "the edited completion's place in `group` (needed with it)"]
    answer: Annotated[str | None, "default the task's answer for the question"]


# request type → (params, result)
INSPECT: dict[str, tuple[type, type]] = {"sample_group": (SampleGroupParams, GroupRecord),
                                         "score": (ScoreParams, ScoreResult),
                                         "compare": (CompareParams, CompareResult),
                                         "replay": (ReplayParams, ReplayResult),
                                         "rescore": (RescoreParams, RescoreResult)}


class ControlRequest(TypedDict):
    """A control request on stdin; `id`, when given, is echoed by the response."""

    v: Literal[1]
    type: ControlType
    id: NotRequired[str]


# ----------------------------------------------------------------------------------- stdout messages
class StartedMessage(TypedDict):
    """Once, first. `train` sends `config` and `resumed_from`; `serve` sends `checkpoint`, `step` and how it
    answers (`one_at_a_time`, `max_request_tokens`)."""

    v: Literal[1]
    type: Literal["started"]
    run_dir: Annotated[str | None, "null: serve on a bare model directory"]
    pid: int
    config: NotRequired[dict[str, Any]]
    resumed_from: NotRequired[Annotated[int | None, Default(None)]]
    checkpoint: NotRequired[str]
    step: NotRequired[int | None]
    one_at_a_time: NotRequired[Annotated[bool, "serve: requests are answered in order, one at a time (a long one "
                                                "delays the next)"]]
    max_request_tokens: NotRequired[Annotated[int, "serve: the most tokens one sample_group may generate "
                                                   "(num_generations × max_completion_length)"]]


class StatusMessage(TypedDict):
    v: Literal[1]
    type: Literal["status"]
    status: RunStatus


class ProgressMessage(TypedDict):
    """SFT progress (not stored in a file), plus numbers such as `loss` and `elapsed`."""

    v: Literal[1]
    type: Literal["progress"]
    phase: str
    step: int
    total: int


class MetricsMessage(TypedDict):
    v: Literal[1]
    type: Literal["metrics"]
    row: MetricsRow


class SamplesMessage(TypedDict):
    v: Literal[1]
    type: Literal["samples"]
    row: GroupRecord


class EventMessage(TypedDict):
    v: Literal[1]
    type: Literal["event"]
    row: RunEvent


class ResponseMessage(TypedDict):
    """The answer to a request on stdin (`id` echoes it; null for a line that could not be read)."""

    v: Literal[1]
    type: Literal["response"]
    id: NotRequired[Annotated[str | int | None, Default(None)]]
    ok: bool
    result: NotRequired[Any]
    error: NotRequired[str]


MESSAGES: dict[str, type] = {"started": StartedMessage, "status": StatusMessage, "progress": ProgressMessage,
                             "metrics": MetricsMessage, "samples": SamplesMessage, "event": EventMessage,
                             "response": ResponseMessage}

# records whose extra fields all have one type (others accept any extra field)
EXTRA: dict[str, Any] = {"MetricsRow": Number, "RunEvent": Any, **{t.__name__: Any for t in EVENTS.values()},
                         "GroupRecord": Any, "Source": Any, "ProgressMessage": Any}

# tagged unions: name → (tag field, variants by tag, the record unknown tags fall back to or None: refused)
UNIONS: dict[str, tuple[str, dict[str, type], type | None]] = {
    "KnownEvent": ("kind", EVENTS, RunEvent),
    "TrainerMessage": ("type", MESSAGES, None),
}
# every record the extension needs (others are reached through these)
ROOTS: tuple[type, ...] = (RunStatus, MetricsRow, GroupRecord, QuestionsRow, PreflightReport, ScoreResult,
                           CompareResult, ReplayResult, ControlRequest, SampleGroupParams, ScoreParams, CompareParams,
                           ReplayParams, RescoreResult, RescoreParams, *EVENTS.values(), *MESSAGES.values())


# ------------------------------------------------------------------------------------ the schema
def _type(t: Any) -> dict[str, Any]:
    """A JSON description of one annotation (the generator's and `validate`'s input)."""
    origin = get_origin(t)
    if origin is Annotated:
        return _type(t.__origin__)
    if origin in (Required, NotRequired):
        return _type(get_args(t)[0])
    if t is Any:
        return {"t": "any"}
    if t is type(None):
        return {"t": "null"}
    if t is bool:
        return {"t": "bool"}
    if t is int:
        return {"t": "int"}
    if t is float:
        return {"t": "float"}
    if t is str:
        return {"t": "str"}
    if origin is Literal:
        for name, lit in ENUMS.items():
            if t == lit:
                return {"t": "enum", "name": name}
        return {"t": "literal", "values": list(get_args(t))}
    if origin in (Union, types.UnionType):
        return {"t": "union", "of": [_type(a) for a in get_args(t)]}
    if origin is list:
        return {"t": "list", "of": _type(get_args(t)[0])}
    if origin is tuple:
        return {"t": "tuple", "items": [_type(a) for a in get_args(t)]}
    if origin is dict:
        return {"t": "dict", "of": _type(get_args(t)[1])}
    if typing.is_typeddict(t):
        # a union's fallback record (RunEvent) stands for "any record of the union, checked by its tag"
        union = next((u for u, (_, _, fallback) in UNIONS.items() if fallback is t), None)
        return {"t": "ref", "name": t.__name__, **({"union": union} if union else {})}
    raise TypeError(f"records.py: no schema for the annotation {t!r}")


def _record(td: type) -> dict[str, Any]:
    hints = typing.get_type_hints(td, include_extras=True)
    fields = []
    for name, hint in hints.items():
        meta: list[Any] = []
        inner = hint
        while get_origin(inner) in (Annotated, Required, NotRequired):
            if get_origin(inner) is Annotated:
                meta += list(inner.__metadata__)
            inner = get_args(inner)[0] if get_origin(inner) is not Annotated else inner.__origin__
        f: dict[str, Any] = {"name": name, "type": _type(inner), "required": name in td.__required_keys__}
        for m in meta:
            if isinstance(m, str):
                f["doc"] = m
            elif isinstance(m, Default):
                f["default"] = m.value
            elif isinstance(m, Len):
                f["len"] = {"of": m.of, "noun": m.noun, "unit": m.unit}
            elif isinstance(m, Paired):
                f["paired"] = m.other
        fields.append(f)
    rec: dict[str, Any] = {"doc": (td.__doc__ or "").strip() if td.__doc__ != TypedDict.__doc__ else "",
                           "fields": fields}
    if td.__name__ in EXTRA:
        rec["extra"] = _type(EXTRA[td.__name__])
    return rec


def schema() -> dict[str, Any]:
    """Every record, enum and tagged union as JSON (what scripts/gen-protocol.mjs turns into TypeScript)."""
    records: dict[str, Any] = {}
    todo = list(ROOTS) + [RunEvent, TokenArrays, Source, CompareSide, PolicySide, ReferenceSide, SequenceKL]
    seen: dict[str, type] = {}
    while todo:
        td = todo.pop(0)
        if td.__name__ in seen:
            continue
        seen[td.__name__] = td
        records[td.__name__] = _record(td)
        todo += _refs(td)
    for name, rec in records.items():
        base = _base(rec, records)
        if base:
            rec["base"] = base
    return {
        "protocol": PROTOCOL_VERSION,
        "enums": {name: list(get_args(lit)) for name, lit in ENUMS.items()},
        "records": dict(sorted(records.items())),
        "unions": {name: {"tag": tag, "variants": {k: v.__name__ for k, v in variants.items()},
                          "fallback": fallback.__name__ if fallback else None}
                   for name, (tag, variants, fallback) in UNIONS.items()},
        "inspect": {k: {"params": p.__name__, "result": r.__name__} for k, (p, r) in INSPECT.items()},
    }


def _base(rec: dict[str, Any], records: dict[str, Any]) -> str | None:
    """The record this one derives from (TypedDict keeps no bases): the longest other record whose fields
    begin this one's, alike or narrowed from a string to string literals (`kind`). For `extends` in the
    TypeScript; validation always uses the whole field list."""
    def inherited(mine: dict, theirs: dict) -> bool:
        return mine["name"] == theirs["name"] and (
            mine == theirs or (theirs["type"] == {"t": "str"} and mine["type"]["t"] == "literal"
                               and all(isinstance(v, str) for v in mine["type"]["values"])))
    best, size = None, 0
    for name, other in records.items():
        n = len(other["fields"])
        if other is rec or other["fields"] == rec["fields"] or not size < n <= len(rec["fields"]):
            continue  # (two records alike would each derive from the other)
        if other.get("extra") in (None, rec.get("extra")) \
                and all(inherited(a, b) for a, b in zip(rec["fields"], other["fields"])):
            best, size = name, n
    return best


def _refs(td: type) -> list[type]:
    out = []

    def walk(t: Any) -> None:
        if typing.is_typeddict(t):
            out.append(t)
            return
        for a in get_args(t):
            if not isinstance(a, (str, int, Default, Len, Paired)):
                walk(a)

    for hint in typing.get_type_hints(td, include_extras=True).values():
        walk(hint)
    return out


# ------------------------------------------------------------------------------------ validation
def validate(name: str, value: Any, sch: dict[str, Any] | None = None) -> list[str]:
    """Problems of `value` as the record or union `name` (empty: valid). The same rules as the
    TypeScript guards: known fields typed, lengths consistent, unknown fields allowed."""
    sch = sch or schema()
    errors: list[str] = []
    if name in sch["unions"]:
        _check_union(sch, name, value, name, errors)
    else:
        _check_record(sch, name, value, name, errors)
    return errors


def _check_union(sch: dict, name: str, v: Any, path: str, errors: list[str]) -> None:
    u = sch["unions"][name]
    if not isinstance(v, dict):
        errors.append(f"{path} is not an object")
        return
    variant = u["variants"].get(v.get(u["tag"])) or u["fallback"]
    if variant is None:
        errors.append(f"{path}: unknown {u['tag']} {v.get(u['tag'])!r}")
    else:
        _check_record(sch, variant, v, path, errors)


def _check_record(sch: dict, name: str, v: Any, path: str, errors: list[str]) -> None:
    rec = sch["records"][name]
    if not isinstance(v, dict):
        errors.append(f"{path} is not an object")
        return
    known = set()
    for f in rec["fields"]:
        known.add(f["name"])
        where = f"{path}.{f['name']}"
        if f["name"] not in v:
            if f["required"]:
                errors.append(f"{where} is missing")
            continue
        _check_type(sch, f["type"], v[f["name"]], where, errors)
        x = v[f["name"]]
        if "len" in f and isinstance(x, list) and isinstance(v.get(f["len"]["of"]), list) \
                and len(x) != len(v[f["len"]["of"]]):
            errors.append(f"{where} has {len(x)} {f['len']['unit']} for {len(v[f['len']['of']])} {f['len']['noun']}")
        other = v.get(f.get("paired", ""))
        if "paired" in f and isinstance(x, list) and isinstance(other, list):
            for i, (a, b) in enumerate(zip(x, other)):
                if isinstance(a, list) and isinstance(b, list) and len(a) != len(b):
                    errors.append(f"{where}[{i}] and {path}.{f['paired']}[{i}] differ in length")
    if "extra" in rec:
        for k, x in v.items():
            if k not in known:
                _check_type(sch, rec["extra"], x, f"{path}.{k}", errors)


def _check_type(sch: dict, t: dict, v: Any, path: str, errors: list[str]) -> None:
    kind = t["t"]
    ok = True
    if kind == "any":
        return
    if kind == "null":
        ok = v is None
    elif kind == "bool":
        ok = isinstance(v, bool)
    elif kind == "int":
        ok = isinstance(v, int) and not isinstance(v, bool)
    elif kind == "float":
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")
    elif kind == "str":
        ok = isinstance(v, str)
    elif kind == "enum":
        ok = v in sch["enums"][t["name"]]
    elif kind == "literal":
        ok = any(v == x and type(v) is type(x) for x in t["values"])
    elif kind == "union":
        for option in t["of"]:
            sub: list[str] = []
            _check_type(sch, option, v, path, sub)
            if not sub:
                return
        ok = False
    elif kind == "list":
        if not isinstance(v, list):
            ok = False
        else:
            for i, x in enumerate(v):
                _check_type(sch, t["of"], x, f"{path}[{i}]", errors)
    elif kind == "tuple":
        ok = isinstance(v, (list, tuple)) and len(v) == len(t["items"])
        if ok:
            for i, (item, x) in enumerate(zip(t["items"], v)):
                _check_type(sch, item, x, f"{path}[{i}]", errors)
    elif kind == "dict":
        ok = isinstance(v, dict)
        if ok:
            for k, x in v.items():
                _check_type(sch, t["of"], x, f"{path}.{k}", errors)
    elif kind == "ref":
        if "union" in t:
            _check_union(sch, t["union"], v, path, errors)
        else:
            _check_record(sch, t["name"], v, path, errors)
    if not ok:
        errors.append(f"{path}: {str(v)[:40]!r} is not {_words(t)}")


def _words(t: dict) -> str:
    kind = t["t"]
    if kind == "union":
        return " or ".join(_words(o) for o in t["of"])
    if kind in ("list", "dict"):
        return f"a {kind} of {_words(t['of'])}"
    if kind in ("enum", "literal"):
        return "one of " + ", ".join(map(repr, t.get("values") or [t["name"]]))
    return {"int": "a whole number", "float": "a finite number", "str": "a string", "bool": "true or false",
            "null": "null", "tuple": f"a list of {len(t.get('items', []))}", "ref": t.get("name", "")}.get(kind, kind)


def check_run_dir(path: Any) -> list[str]:
    """Problems of a run directory's records (status.json and every row of the .jsonl files) against
    these definitions; empty: all valid. A torn last line is not a problem (a crash may leave one)."""
    import json
    from pathlib import Path

    root, sch, errors = Path(path), schema(), []
    try:
        errors += validate("RunStatus", json.loads((root / "status.json").read_text(encoding="utf-8")), sch)
    except (OSError, ValueError) as e:
        errors.append(f"status.json: {e}")
    for name, record in (("metrics.jsonl", "MetricsRow"), ("events.jsonl", "KnownEvent"),
                         ("samples.jsonl", "GroupRecord"), ("questions.jsonl", "QuestionsRow")):
        file = root / name
        lines = file.read_text(encoding="utf-8").split("\n") if file.exists() else []
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                if i < len(lines):  # a torn last line has no newline after it
                    errors.append(f"{name}:{i}: not JSON")
                continue
            errors += [f"{name}:{i}: {e}" for e in validate(record, row, sch)]
    return errors
