"""The run configuration: one flat table of settings, validated before any work starts.

Names follow TRL's ``GRPOConfig`` where the idea is the same (num_generations, beta, epsilon, epsilon_high,
loss_type, scale_rewards, num_iterations, max_completion_length, temperature, top_p, learning_rate,
max_steps, logging_steps, save_steps, seed). A setting comes from the defaults below, then a JSON config
file, then ``--set key=value`` overrides; every error names the key.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A setting is unknown, of the wrong type, or out of range. The message names the setting."""


def _opt(default: Any, help: str, choices: tuple | None = None, minimum: float | None = None,
         maximum: float | None = None, exclusive_min: bool = False) -> Any:
    return field(default=default, metadata={
        "help": help, "choices": choices, "min": minimum, "max": maximum, "exclusive_min": exclusive_min})


@dataclass
class Config:
    # What to train on and with
    task: str = _opt("arith", "built-in task (arith), a path to a JSONL or Parquet file of question/answer rows, "
                     "or a user task 'module:object' (a grpo.tasks.Task, or a callable taking the settings)")
    model: str = _opt("builtin:tiny", "builtin:tiny (a tiny Llama with a character tokenizer) or a local "
                      "Hugging Face model directory")
    reward: str = _opt("outcome", "outcome: one reward per completion; process: one per reasoning step",
                       choices=("outcome", "process"))
    reward_function: str = _opt("", "optional user reward 'module:function'(questions, completions, answers) "
                                "-> list of floats; replaces the task's outcome reward")
    reward_funcs: str = _opt("", "TRL-style reward functions, comma-separated: 'module:function' (called as TRL "
                             "1.16 calls its reward_funcs, with keyword arguments prompts, completions, "
                             "completion_ids, every dataset column and trainer_state; None means 'does not apply') "
                             "or built-in names (accuracy: the verifier's verdict, 1 or 0); the reward is their "
                             "weighted sum. Empty: the verifier's verdict (or reward_function)")
    reward_weights: str = _opt("", "comma-separated weights of reward_funcs, in order (empty: all 1.0)")
    device: str = _opt("auto", "auto, cpu or cuda", choices=("auto", "cpu", "cuda"))
    seed: int = _opt(0, "random seed (data, sampling, initialisation)", minimum=0)
    arith_min_ops: int = _opt(2, "task arith: fewest operations in a question", minimum=1, maximum=8)
    arith_max_ops: int = _opt(2, "task arith: most operations in a question (the README's default: 2)",
                              minimum=1, maximum=8)

    # Supervised warm-up (the paper's SFT stage; 0 skips it)
    sft_steps: int = _opt(2000, "SFT optimizer steps on worked solutions before GRPO", minimum=0)
    sft_batch_size: int = _opt(64, "SFT sequences per step", minimum=1)
    sft_learning_rate: float = _opt(5e-3, "SFT learning rate", minimum=0, exclusive_min=True)
    sft_direct_fraction: float = _opt(0.3, "fraction of SFT targets that are a direct answer ('#### N') instead "
                                      "of a worked solution (tasks that have both)", minimum=0, maximum=1)
    sft_direct_weight: float = _opt(2.5, "loss weight of a direct-answer SFT target (worked ones weigh 1)",
                                    minimum=0, exclusive_min=True)
    sft_direct_weighting: str = _opt("first_token", "where sft_direct_weight applies: every token of a direct answer "
                                     "(sequence), or only its first token, the one that chooses the answer's "
                                     "style (first_token)", choices=("sequence", "first_token"))

    # GRPO
    max_steps: int = _opt(60, "GRPO optimizer steps", minimum=0)
    num_generations: int = _opt(8, "G: completions sampled per question", minimum=2)
    questions_per_step: int = _opt(32, "questions per step (TRL: per_device_train_batch_size / "
                                   "num_generations)", minimum=1)
    learning_rate: float = _opt(1e-4, "GRPO learning rate (AdamW)", minimum=0, exclusive_min=True)
    lr_scheduler_type: str = _opt("constant", "constant or cosine (after warmup_steps)",
                                  choices=("constant", "cosine", "linear"))
    warmup_steps: int = _opt(0, "linear learning-rate warm-up steps", minimum=0)
    weight_decay: float = _opt(0.0, "AdamW weight decay", minimum=0)
    max_grad_norm: float = _opt(1.0, "gradient clipping norm (0 disables)", minimum=0)
    beta: float = _opt(0.04, "KL coefficient β (k3 estimator, in the loss)", minimum=0)
    epsilon: float = _opt(0.2, "PPO clip range ε", minimum=0, maximum=1, exclusive_min=True)
    epsilon_high: float | None = _opt(None, "upper clip range (clip-higher, DAPO); defaults to epsilon",
                                      minimum=0, exclusive_min=True)
    loss_type: str = _opt("grpo", "grpo: per-sequence mean then mean over sequences (the paper); dr_grpo: "
                          "sum over tokens / (N·max_completion_length); dapo: token-level mean over the step's "
                          "batch; bnpo: token-level mean over each forward pass's batch (TRL's)",
                          choices=("grpo", "dr_grpo", "dapo", "bnpo"))
    importance_sampling_level: str = _opt("token", "token: one ratio π_θ/π_old per token (the paper); sequence: "
                                          "GSPO's one ratio per completion, the geometric mean of its token ratios, "
                                          "clipped per completion (GSPO uses ε of order 3e-4, not 0.2)",
                                          choices=("token", "sequence"))
    top_entropy_quantile: float = _opt(1.0, "only the tokens whose entropy is in the top q of each forward pass's "
                                       "tokens keep the policy-gradient term (TRL's; 1: every token)", minimum=0,
                                       maximum=1, exclusive_min=True)
    scale_rewards: str = _opt("group", "divide advantages by the std of the group, the batch, or not at all",
                              choices=("group", "batch", "none"))
    num_iterations: int = _opt(1, "μ: policy updates per sampled batch", minimum=1)
    ref_reset_steps: int = _opt(0, "iterative RL: every N steps the reference becomes the policy (0: never)",
                                minimum=0)
    mask_truncated_completions: bool = _opt(False, "truncated completions (no EOS within max_completion_length) get "
                                            "no policy gradient and no KL term (TRL's setting; DAPO's overlong "
                                            "filtering)")
    dynamic_sampling: bool = _opt(False, "DAPO's dynamic sampling (verl: filter_groups): drop groups whose rewards "
                                  "are all equal and sample more questions until questions_per_step groups carry "
                                  "signal or dynamic_sampling_max_rounds extra rounds are spent")
    dynamic_sampling_max_rounds: int = _opt(3, "dynamic sampling: the most extra sampling rounds per step (each "
                                            "samples the missing questions × G again); a step still short then "
                                            "trains on what it has", minimum=1, maximum=64)
    max_prompt_length: int = _opt(128, "prompts longer than this (tokens) are skipped and counted", minimum=1)
    max_completion_length: int = _opt(64, "maximum completion tokens", minimum=1)
    temperature: float = _opt(1.0, "sampling temperature", minimum=0, exclusive_min=True)
    top_p: float = _opt(1.0, "nucleus sampling", minimum=0, maximum=1, exclusive_min=True)

    # Hugging Face models, datasets and verifiers (docs/models.md)
    dtype: str = _opt("auto", "weights and compute dtype; auto: bfloat16 on a CUDA GPU that supports it, else "
                      "float32", choices=("auto", "float32", "bfloat16", "float16"))
    attn_implementation: str = _opt("auto", "attention kernel; auto: flash_attention_2 when the flash-attn "
                                    "package is importable on CUDA with 16-bit weights, else sdpa",
                                    choices=("auto", "sdpa", "eager", "flash_attention_2"))
    gradient_checkpointing: bool = _opt(False, "recompute activations in the backward pass (less memory)")
    lora_r: int = _opt(0, "LoRA rank (peft); 0 trains every weight. With LoRA the reference is the base model "
                       "with adapters disabled", minimum=0)
    lora_alpha: float = _opt(32.0, "LoRA scaling alpha", minimum=0, exclusive_min=True)
    lora_dropout: float = _opt(0.0, "LoRA dropout", minimum=0, maximum=1)
    lora_target_modules: str = _opt("all-linear", "comma-separated module names for LoRA adapters, or "
                                    "all-linear")
    fsdp: str = _opt("", "under torchrun, shard the policy and the reference over the processes with PyTorch's "
                     "FSDP2 (fully_shard per transformer block, then the whole model), for models whose weights, "
                     "gradients and optimizer state do not fit one device; full_shard: weights, gradients and "
                     "AdamW state sharded (as accelerate's FULL_SHARD); empty: data parallel, every process holds "
                     "the whole model. One process: ignored with a warning (docs/models.md)",
                     choices=("", "full_shard"))
    fsdp_offload_params: bool = _opt(False, "with fsdp: keep the sharded weights, gradients and optimizer state "
                                     "in CPU memory between uses (FSDP2's CPUOffloadPolicy; slower, less GPU "
                                     "memory)")
    question_column: str = _opt("question", "dataset column holding the question (JSONL key or Parquet column)")
    answer_column: str = _opt("answer", "dataset column holding the answer or worked solution")
    answer_format: str = _opt("auto", "how the reference answer is read from answer_column: gsm8k (after "
                              "'####'), math (the last \\boxed{...}), plain (the whole field), auto (gsm8k if "
                              "'####' is present, else math if \\boxed is, else plain)",
                              choices=("auto", "gsm8k", "math", "plain"))
    chat_template: str = _opt("auto", "format prompts with the tokenizer's chat template; auto: when it has one",
                              choices=("auto", "on", "off"))
    system_prompt: str = _opt("", "system message for chat-formatted prompts (empty: none)")
    verifier: str = _opt("auto", "answer checking: number ('####' value or last number, compared numerically), "
                         "math_verify (Hugging Face math-verify: LaTeX, fractions, sets...), auto (the task's own: "
                         "number for arith, math_verify for files)", choices=("auto", "number", "math_verify"))
    answer_fallback: str = _opt("auto", "a completion without the answer marker ('####') or a box: on: its last "
                                "number (number) or last expression (math_verify) is its answer; off: it gave no "
                                "answer and is wrong; auto: off for tasks that define a marker (arith, GSM8K-style "
                                "data), on for others", choices=("auto", "on", "off"))
    rollout_engine: str = _opt("auto", "how completions are sampled: kv_cache (incremental decoding with a "
                               "dynamic KV cache), static (preallocated KV cache; compiled with CUDA graphs on "
                               "CUDA), hf_generate (transformers generate(), the baseline), vllm (needs the vllm "
                               "package); auto: static on CUDA, else kv_cache",
                               choices=("auto", "kv_cache", "static", "hf_generate", "vllm"))
    micro_batch_size: int = _opt(0, "sequences per forward/backward pass; gradients accumulate over the step's "
                                 "batch (0: the whole batch at once)", minimum=0)
    logprob_chunk_tokens: int = _opt(4096, "token positions per chunk when computing log-softmax over the "
                                     "vocabulary (bounds the fp32 logits in memory; 0: all at once)", minimum=0)

    # Logging, evaluation, checkpoints
    logging_steps: int = _opt(1, "write a metrics row every N steps", minimum=1)
    log_samples_steps: int = _opt(10, "log a whole group to samples.jsonl every N steps (0: never)", minimum=0)
    replay_total_limit: int = _opt(3, "at each logged step (log_samples_steps) also keep what `grpo replay` needs "
                                   "to re-apply it: the trainable weights and optimizer state before it and its "
                                   "batch (about 3× the trainable parameters' size each; LoRA: the adapters'); "
                                   "keep the newest N (0: none)", minimum=0)
    replay_max_gb: float = _opt(2.0, "write no replay records when one would exceed this many GB (a full "
                                "fine-tune of a large model: 3 × its parameters; a warning says so); 0: no limit",
                                minimum=0)
    eval_steps: int = _opt(25, "greedy held-out evaluation every N steps (0: only at the end)", minimum=0)
    eval_size: int = _opt(400, "held-out questions for evaluation", minimum=1)
    held_out: str = _opt("", "a JSONL or Parquet file of held-out question/answer rows to evaluate on (its first "
                         "eval_size); empty: generated (arith) or split from the task file")
    decontaminate: str = _opt("remove", "training questions sharing a 10-gram with a held-out question (short ones: "
                              "identical after normalisation) are removed, or only reported (an event either way)",
                              choices=("remove", "report"))
    eval_samples: int = _opt(16, "n: completions sampled per held-out question for pass@k and maj@k, at the GRPO "
                             "start and end (0: greedy accuracy only)", minimum=0)
    eval_k: str = _opt("1,4,8,16", "the k of pass@k and maj@k, comma-separated (k > eval_samples is left out)")
    eval_temperature: float = _opt(1.0, "sampling temperature of the pass@k / maj@k evaluation", minimum=0,
                                   exclusive_min=True)
    eval_sampled_steps: int = _opt(0, "also compute pass@k / maj@k every N steps (0: only at the start and the "
                                   "end; each costs eval_size × eval_samples completions)", minimum=0)
    save_steps: int = _opt(50, "GRPO checkpoint every N steps (0: only at the start and the end)", minimum=0)
    # 500 SFT steps are about 30 s of the default SFT on 2 CPU cores (about 17 steps a second): what a SIGKILL
    # can lose; an SFT checkpoint (no ONNX export) takes well under a second, so 4 of them cost nothing
    sft_save_steps: int = _opt(500, "SFT checkpoint (for resuming) every N SFT steps (0: only when SFT ends); a "
                               "stop request saves at once either way", minimum=0)
    # 5 keeps the default run's directory near 25 MB (a checkpoint is about 6 MB with its optimizer state)
    save_total_limit: int = _opt(5, "keep at most N checkpoints of both phases, pruning the oldest after each save; "
                                 "step_000000 (the start and reference), the newest and any in use are always kept "
                                 "(0: keep all)", minimum=0)
    onnx_export: bool = _opt(True, "export step_000000 and the GRPO checkpoints (step_*) to onnx/ (policy and "
                             "reference as ONNX, with the tokenizer description) in a background process, for the "
                             "editor's per-token views; only models of at most 50M parameters with a fast (Hugging "
                             "Face tokenizers) or the built-in tokenizer")
    sft_cache: bool = _opt(True, "reuse an SFT start trained before with the same settings, task data and trainer "
                           "version from the user cache ($GRPO_CACHE_DIR, else $XDG_CACHE_HOME/grpo-studio, else "
                           "~/.cache/grpo-studio), and store each new one there")
    max_nonfinite_steps: int = _opt(5, "stop the run after this many non-finite losses in a row", minimum=1)
    report_to: str = _opt("none", "also send every metrics row to: none, tensorboard (event files under "
                          "logging_dir), wandb (WANDB_MODE=offline works; project from WANDB_PROJECT), trackio, or "
                          "several comma-separated; each needs its optional package (pip install "
                          "grpo-studio[tensorboard], [wandb], [trackio])")
    logging_dir: str = _opt("", "where report_to=tensorboard writes its event files (empty: the run directory's tb/)")

    # ---------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def eps_high(self) -> float:
        return self.epsilon if self.epsilon_high is None else self.epsilon_high


def schema() -> list[dict[str, Any]]:
    """Every setting with its type, default and bounds (what `python -m grpo config-schema` prints)."""
    out = []
    for f in fields(Config):
        meta = dict(f.metadata)
        out.append({"key": f.name, "type": _type_name(f), "default": f.default, **meta})
    return out


def _type_name(f: dataclasses.Field) -> str:
    t = str(f.type)
    for name in ("bool", "int", "float", "str"):
        if t.startswith(name):
            return name
    raise AssertionError(f"unsupported config type {t}")


MAX_INT = 2**53 - 1  # the largest whole number every JSON reader (the extension's too) holds exactly


def _coerce(key: str, type_name: str, value: Any, nullable: bool) -> Any:
    if value is None:
        if nullable:
            return None
        raise ConfigError(f"setting '{key}' must be a {type_name}, not null")
    if type_name == "str":
        if not isinstance(value, str):
            raise ConfigError(f"setting '{key}' must be a string, got {value!r}")
        return value
    if type_name == "bool":
        if isinstance(value, bool):
            return value
        raise ConfigError(f"setting '{key}' must be true or false, got {value!r}")
    if isinstance(value, bool):
        raise ConfigError(f"setting '{key}' must be a number, got {value!r}")
    if type_name == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise ConfigError(f"setting '{key}' must be a whole number, got {value!r}")
        if abs(value) > MAX_INT:  # e.g. seed=1e300: no generator takes it, and JSON readers lose its digits
            raise ConfigError(f"setting '{key}' must be between -{MAX_INT} and {MAX_INT}; got {value!r}")
        return value
    if isinstance(value, (int, float)):
        if not math.isfinite(value):  # NaN passes every comparison _check_range makes
            raise ConfigError(f"setting '{key}' must be a finite number, got {value!r}")
        return float(value)
    raise ConfigError(f"setting '{key}' must be a number, got {value!r}")


def _parse_cli_value(key: str, type_name: str, text: str) -> Any:
    """`--set key=value`: JSON where it parses (numbers, true, null), else the bare string."""
    if type_name == "str":
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(f"setting '{key}' must be a {type_name}, got {text!r}") from None


def _check_range(key: str, value: Any, meta: dict) -> None:
    if value is None:
        return
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"setting '{key}' must be one of {', '.join(choices)}; got {value!r}")
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and (value < lo or (meta.get("exclusive_min") and value == lo)):
        op = ">" if meta.get("exclusive_min") else "≥"
        raise ConfigError(f"setting '{key}' must be {op} {lo}; got {value!r}")
    if hi is not None and value > hi:
        raise ConfigError(f"setting '{key}' must be ≤ {hi}; got {value!r}")


def build_config(base: dict[str, Any] | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults ← `base` (a parsed config file or an earlier run's config.json) ← `--set key=value` strings."""
    by_name = {f.name: f for f in fields(Config)}
    values: dict[str, Any] = {}
    for key, value in (base or {}).items():
        if key not in by_name:
            raise ConfigError(_unknown(key, by_name))
        values[key] = value
    for item in overrides or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        if key not in by_name:
            raise ConfigError(_unknown(key, by_name))
        values[key] = _parse_cli_value(key, _type_name(by_name[key]), text)
    resolved = {}
    for key, value in values.items():
        f = by_name[key]
        nullable = f.default is None
        v = _coerce(key, _type_name(f), value, nullable)
        _check_range(key, v, f.metadata)
        resolved[key] = v
    cfg = Config(**resolved)
    _check_range("max_steps", cfg.max_steps, by_name["max_steps"].metadata)
    if cfg.lora_r and cfg.model == "builtin:tiny":
        raise ConfigError("setting 'lora_r' needs a Hugging Face model directory in 'model' (LoRA keeps the "
                          "base weights frozen; builtin:tiny has none saved)")
    if cfg.lora_r and cfg.ref_reset_steps:
        raise ConfigError("setting 'ref_reset_steps' cannot be used with 'lora_r' > 0: the LoRA reference is the "
                          "base model with adapters disabled")
    if cfg.fsdp_offload_params and not cfg.fsdp:
        raise ConfigError("setting 'fsdp_offload_params' needs 'fsdp' = full_shard")
    if cfg.fsdp and cfg.rollout_engine in ("static", "vllm"):
        raise ConfigError(f"setting 'fsdp' cannot be used with rollout_engine={cfg.rollout_engine}: sampling under "
                          "fsdp runs on the gathered weights with rollout_engine kv_cache or hf_generate (auto: "
                          "kv_cache)")
    if cfg.fsdp and cfg.ref_reset_steps:
        raise ConfigError("setting 'ref_reset_steps' cannot be used with 'fsdp' yet (the sharded reference is "
                          "not reset in place)")
    if not [m for m in cfg.lora_target_modules.split(",") if m.strip()]:
        raise ConfigError("setting 'lora_target_modules' must name at least one module (or all-linear)")
    for key in ("question_column", "answer_column"):
        if not getattr(cfg, key).strip():
            raise ConfigError(f"setting '{key}' must not be empty")
    try:
        parse_ks(cfg.eval_k)
    except ValueError as e:
        raise ConfigError(f"setting 'eval_k': {e}") from None
    if cfg.arith_min_ops > cfg.arith_max_ops:
        raise ConfigError(f"setting 'arith_min_ops' ({cfg.arith_min_ops}) must be ≤ 'arith_max_ops' "
                          f"({cfg.arith_max_ops})")
    if cfg.reward_function and ":" not in cfg.reward_function:
        raise ConfigError(f"setting 'reward_function' must look like 'module:function'; got {cfg.reward_function!r}")
    _check_reward_funcs(cfg)
    try:
        report_targets(cfg.report_to)
    except ValueError as e:
        raise ConfigError(f"setting 'report_to': {e}") from None
    return cfg


BUILTIN_REWARDS = ("accuracy",)  # reward_funcs' built-in names (rewards.py)
REPORT_TARGETS = ("tensorboard", "wandb", "trackio")


def reward_func_names(text: str) -> list[str]:
    """'accuracy, my_rewards:fmt' → ['accuracy', 'my_rewards:fmt'] (the reward_funcs setting's items)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def reward_weight_values(text: str, n: int) -> list[float]:
    """The reward_weights setting as n floats (empty: n ones); ValueError naming the problem."""
    if not text.strip():
        return [1.0] * n
    try:
        weights = [float(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"must be numbers separated by commas; got {text!r}") from None
    if not all(math.isfinite(w) for w in weights):
        raise ValueError(f"must be finite numbers; got {text!r}")
    if len(weights) != n:
        raise ValueError(f"has {len(weights)} weights for {n} reward functions (reward_funcs)")
    return weights


def report_targets(text: str) -> list[str]:
    """The report_to setting as a list of targets ([] for none); ValueError naming an unknown one."""
    items = [p.strip() for p in text.split(",") if p.strip()]
    if items == ["none"] or not items:
        return []
    for item in items:
        if item not in REPORT_TARGETS:
            raise ValueError(f"unknown target {item!r}; use none or a comma-separated list of "
                             f"{', '.join(REPORT_TARGETS)}")
    return list(dict.fromkeys(items))


def _check_reward_funcs(cfg: Config) -> None:
    names = reward_func_names(cfg.reward_funcs)
    if cfg.reward_funcs.strip() and not names:
        raise ConfigError("setting 'reward_funcs' names no function")
    for name in names:
        if ":" not in name and name not in BUILTIN_REWARDS:
            raise ConfigError(f"setting 'reward_funcs': {name!r} is neither 'module:function' nor a built-in reward "
                              f"({', '.join(BUILTIN_REWARDS)})")
    if names and cfg.reward_function:
        raise ConfigError("settings 'reward_funcs' and 'reward_function' cannot both be set: name the positional "
                          "function in reward_funcs as a TRL-style one instead (it gets keyword arguments)")
    if names and cfg.reward == "process":
        raise ConfigError("setting 'reward_funcs' needs reward = outcome (process supervision's rewards come from "
                          "the task's step checker)")
    if cfg.reward_weights.strip() and not names:
        raise ConfigError("setting 'reward_weights' needs 'reward_funcs'")
    try:
        reward_weight_values(cfg.reward_weights, len(names))
    except ValueError as e:
        raise ConfigError(f"setting 'reward_weights' {e}") from None


# Settings that say *what* a run trains: the model, the task and its data, the reward, the seed, the weights'
# shape. `--resume` refuses to change them (they would continue a different run under this one's name);
# everything else (max_steps, logging, evaluation and checkpoint cadence, learning rate, β, …) may change,
# and config.json's `history` records what changed when.
IDENTITY = ("model", "task", "seed", "reward", "reward_function", "reward_funcs", "reward_weights", "arith_min_ops",
            "arith_max_ops", "held_out", "question_column", "answer_column", "answer_format", "chat_template", "system_prompt", "verifier",
            "dtype", "lora_r", "lora_alpha", "lora_target_modules")
HISTORY = "history"  # config.json's list of resumes and the settings each changed (not a setting)


def resume_settings(saved: dict[str, Any], overrides: list[str] | None, config_file: dict[str, Any] | None,
                    allow_identity_change: bool) -> Config:
    """The settings of a resumed run: its config.json ← a config file ← `--set`. A change to an IDENTITY
    setting is a ConfigError naming the keys (from → to), unless allowed. (What changed is recorded in
    config.json's history by RunDir.start, which compares the file with what it writes.)"""
    saved = {k: v for k, v in saved.items() if k != HISTORY}
    before = build_config(saved)
    after = build_config({**saved, **(config_file or {})}, overrides)
    old, new = before.to_dict(), after.to_dict()
    changed = {k: {"from": old[k], "to": new[k]} for k in new if old.get(k) != new[k]}
    refused = [k for k in changed if k in IDENTITY]
    if refused and not allow_identity_change:
        what = ", ".join(f"'{k}' ({changed[k]['from']!r} → {changed[k]['to']!r})" for k in refused)
        raise ConfigError(f"--resume would change what this run trains: setting {what}. Start a new run for it, or "
                          "pass --allow-changed-settings if you mean to continue this one under new settings")
    return after


def parse_ks(text: str) -> tuple[int, ...]:
    """'1,4,8,16' → (1, 4, 8, 16), the k of pass@k and maj@k; raises ValueError naming the problem."""
    try:
        ks = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise ValueError(f"k values must be whole numbers separated by commas; got {text!r}") from None
    if not ks or ks[0] < 1:
        raise ValueError(f"k values must be ≥ 1; got {text!r}")
    return ks


def _unknown(key: str, by_name: dict) -> str:
    import difflib
    close = difflib.get_close_matches(key, list(by_name), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown setting '{key}'{hint}"


def load_config_file(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"config file {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a JSON object of settings")
    return data
