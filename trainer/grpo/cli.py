"""Command line: `python -m grpo train | eval | decontaminate | sample | export-onnx | serve | replay | import-trl |
paradigm | check-rewards | user-code | config-schema`.

stdout belongs to machine-readable output (the protocol stream for `train` when stdout is a pipe or a file, or
with --stream; one JSON document for the others); everything human goes to stderr. Setting errors exit with status 2 before any work starts.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from . import config as config_mod, threads
from .config import ConfigError

log = logging.getLogger("grpo")


def _setup_logging(log_file: Path | None = None, console=None) -> None:
    """Log lines to stderr (through `console`, a rich Console, when a progress bar owns the terminal) and to
    `log_file`."""
    if console is not None:
        from rich.logging import RichHandler

        screen: logging.Handler = RichHandler(console=console, show_path=False, markup=False)
    else:
        screen = logging.StreamHandler(sys.stderr)
    handlers: list[logging.Handler] = [screen]
    if log_file is not None:
        file_handler = _RunLogHandler(log_file)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handlers.append(file_handler)
    logging.basicConfig(level=logging.INFO, format="%(message)s" if console is not None else
                        "%(asctime)s %(levelname)s %(message)s", handlers=handlers, force=True)
    for noisy in ("transformers", "torch", "onnxscript", "onnx_ir"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


class _RunLogHandler(logging.FileHandler):
    """trainer.log in the run directory, opened without following a link planted there."""

    def __init__(self, path: Path):
        super().__init__(path, encoding="utf-8", delay=True)

    def _open(self):
        from .rundir import open_for_write

        return os.fdopen(open_for_write(Path(self.baseFilename), append=True), "a", encoding="utf-8")


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning, module="transformers")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


class _TolerantStream:
    """stderr that survives its reader going away (the extension window reloaded): training goes on and
    the run directory keeps the record; lost progress lines do not matter."""

    def __init__(self, inner):
        self._inner = inner

    def write(self, text: str) -> int:
        try:
            return self._inner.write(text)
        except (OSError, ValueError):
            return len(text)

    def flush(self) -> None:
        try:
            self._inner.flush()
        except (OSError, ValueError):
            pass

    def isatty(self) -> bool:
        try:
            return self._inner.isatty()
        except (OSError, ValueError):
            return False

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _fail(message: str, code: int = 2) -> int:
    sys.stderr.write(f"grpo: error: {message}\n")
    return code


def _train_settings(args: argparse.Namespace, run_dir: Path):
    """The run's settings: defaults ← --config ← --set, or on --resume the run's config.json (data from
    anywhere: a regular file of bounded size) with what --set may change. Raises ConfigError; returns an
    error message (str) when the run directory does not fit the command."""
    base: dict = {}
    exists = (run_dir / "config.json").exists() or (run_dir / "config.json").is_symlink()
    if args.resume:
        if not exists:
            return f"--resume: {run_dir} has no config.json (not a run directory)"
        from .rundir import read_json_file

        try:
            base = read_json_file(run_dir / "config.json")
        except (OSError, ValueError) as e:
            raise ConfigError(f"--resume: {e}") from None
        if not isinstance(base, dict):
            raise ConfigError(f"--resume: {run_dir / 'config.json'} must hold a JSON object of settings")
    elif exists:
        return f"{run_dir} already holds a run; pass --resume to continue it or choose another --run-dir"
    from_file = config_mod.load_config_file(args.config) if args.config else {}
    if args.resume:
        return config_mod.resume_settings(base, args.set, from_file, args.allow_changed_settings)
    return config_mod.build_config(from_file, args.set)


def cmd_train(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    from . import distributed

    if distributed.launched():  # under torchrun: join the group; rank 0 names the run directory
        distributed.init()
        run_dir = Path(distributed.broadcast(str(run_dir)))
    try:
        cfg = _train_settings(args, run_dir)
    except ConfigError as e:
        return _fail(str(e))
    if isinstance(cfg, str):
        return _fail(cfg)
    distributed.barrier()  # every rank has checked the run directory before rank 0 writes to it
    if distributed.is_main():
        from .rundir import LinkRefused, RunBusy, acquire_writer, check_links

        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            check_links(run_dir)      # before the log file or anything else is opened in it
            acquire_writer(run_dir)   # one writer per run directory, released however this process ends
        except (LinkRefused, RunBusy) as e:
            return _fail(str(e), 1)
    sys.stderr = _TolerantStream(sys.__stderr__)
    from .progress import Progress, summary_lines

    progress = Progress(enabled=not args.quiet and distributed.is_main())
    _setup_logging(run_dir / "trainer.log" if distributed.is_main() else None, progress.console)
    _quiet_libraries()
    import torch

    from . import protocol
    from .loop import run_training

    log.info("torch threads: %d (cores this process may use: %d; %s)", threads.configure(), threads.usable_cores(),
             threads.describe())
    # Only rank 0 speaks the protocol on stdout, and only to a program (a pipe, a file) or with --stream: a
    # person at a terminal gets the progress bar and the summary, the run directory keeps the record either way.
    speak = distributed.is_main() and (args.stream or not _isatty(sys.__stdout__))
    stream = protocol.Stream(sys.__stdout__ if speak else open(os.devnull, "w"))
    sys.stdout = sys.stderr  # stray prints from libraries must never reach the protocol stream
    t0 = time.time()
    try:
        code = run_training(cfg, run_dir, stream, args.resume, progress)
    except (ValueError, OSError, RuntimeError) as e:  # OSError: e.g. the disk filled up (the run is marked failed)
        log.error("%s", e)
        return 1
    finally:
        distributed.shutdown()
    if progress.tty:
        from .rundir import read_jsonl

        progress.summary(summary_lines(read_jsonl(run_dir / "events.jsonl")[0], time.time() - t0, run_dir))
    return code


def cmd_preflight(args: argparse.Namespace) -> int:
    import json

    from . import preflight

    try:
        cfg = config_mod.build_config(config_mod.load_config_file(args.config) if args.config else {}, args.set)
        report = None
    except (ConfigError, OSError) as e:
        cfg, report = None, preflight.bad_settings(str(e))
    if report is None:
        sys.stderr = _TolerantStream(sys.__stderr__)
        _setup_logging()
        if args.quiet:
            logging.getLogger().setLevel(logging.WARNING)
        _quiet_libraries()
        log.info("torch threads: %d (%s)", threads.configure(), threads.describe())
        out, sys.stdout = sys.stdout, sys.stderr  # library prints stay off the report
        try:
            report = preflight.run(cfg, args.questions)
        finally:
            sys.stdout = out
    print(json.dumps(report) if args.json else preflight.describe(report), flush=True)
    return report["exit_code"]


def cmd_replay(args: argparse.Namespace) -> int:
    """Re-apply a logged step under the run's settings and under alternatives (replay.py)."""
    import json

    from . import checkpoint, replay

    sys.stderr = _TolerantStream(sys.__stderr__)
    _setup_logging()
    _quiet_libraries()
    threads.configure()
    try:
        variants = [replay.settings_of([kv for kv in item.split(",") if kv.strip()]) for item in args.set]
    except replay.ReplayError as e:
        return _fail(str(e))
    out, sys.stdout = sys.stdout, sys.stderr  # library prints stay off the result
    try:
        result = replay.replay(Path(args.run_dir), args.step, variants)
    except replay.ReplayError as e:
        return _fail(str(e), 2 if "setting" in str(e) else 1)
    except (checkpoint.CheckpointError, OSError) as e:
        return _fail(str(e), 1)
    finally:
        sys.stdout = out
    print(json.dumps(result) if args.json else replay.describe(result), flush=True)
    return 0


def _isatty(f) -> bool:
    try:
        return f is not None and f.isatty()
    except (OSError, ValueError):
        return False


def cmd_eval(args: argparse.Namespace) -> int:
    _setup_logging()
    _quiet_libraries()
    import torch

    from . import context, data, evaluation

    if args.samples < 0:
        return _fail("--samples must be ≥ 0")
    if args.temperature <= 0:
        return _fail("--temperature must be > 0 (greedy accuracy is always reported)")
    try:
        ks = config_mod.parse_ks(args.k)
    except ValueError as e:
        return _fail(f"--k: {e}")
    try:
        ctx, _, _ = context.from_checkpoint(args.checkpoint, user_code=not args.no_user_code)
        s = ctx.settings  # the run's columns and answer format; its prompt, verifier and engine
        rows, bad = data.load_rows(args.data, s.question_column, s.answer_column, s.answer_format)
    except (FileNotFoundError, OSError, ValueError) as e:
        return _fail(str(e), 1)
    gen = torch.Generator(device=ctx.device).manual_seed(args.seed)
    report = ctx.evaluate(rows, max_new_tokens=args.max_new_tokens, samples=args.samples, ks=ks,
                          temperature=args.temperature, generator=gen)
    out = {**report.fields(), "correct": round(report.accuracy * len(rows)), "bad_rows": bad,
           "checkpoint": str(args.checkpoint)}
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


def cmd_decontaminate(args: argparse.Namespace) -> int:
    from . import decontaminate

    try:
        train, bad_train = _raw_rows(args.train, args.question_column, "--train")
        evals, bad_eval = _raw_rows(args.eval, args.eval_question_column, "--eval")
    except (FileNotFoundError, OSError, ValueError) as e:
        return _fail(str(e), 1)
    questions = [q for q, _ in train]
    found = decontaminate.check(questions, [q for q, _ in evals])
    out = {**found.fields(questions, "removed" if args.out else "reported"), "kept": len(train) - len(found.matched),
           "bad_rows": {"train": bad_train, "eval": bad_eval}, "out": None}
    if args.out:
        drop = set(found.matched)
        try:
            with Path(args.out).open("w", encoding="utf-8") as f:
                for i, (_, line) in enumerate(train):
                    if i not in drop:
                        f.write(line + "\n")
        except OSError as e:
            return _fail(f"--out {args.out}: {e}", 1)
        out["out"] = str(Path(args.out).resolve())
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


def _raw_rows(path: str, question_column: str, option: str) -> tuple[list[tuple[str, str]], int]:
    """(question, the row as one JSON line) for each usable row of a JSONL or Parquet file, and the bad-row count:
    `decontaminate --out` writes the kept rows whole, whatever their other fields."""
    from . import data

    if not Path(path).is_file():
        raise FileNotFoundError(f"{option} {path}: no such file")
    objs = data.raw_records(path, option)
    rows, bad = [], 0
    for line, obj in objs:
        q = obj.get(question_column) if isinstance(obj, dict) else None
        if isinstance(q, str) and q.strip():
            rows.append((q, line))
        else:
            bad += 1
    return rows, bad


def cmd_sample(args: argparse.Namespace) -> int:
    _setup_logging()
    _quiet_libraries()
    import torch

    from . import context, inspector, models
    from .protocol import to_json

    if args.num_generations is not None and args.num_generations < 2:
        return _fail("--num-generations must be ≥ 2 (a group needs at least two completions)")
    flags = {"num_generations": args.num_generations, "temperature": args.temperature, "top_p": args.top_p,
             "scale_rewards": args.scale_rewards, "reward": "process" if args.process else None}
    try:
        ctx, source, _ = context.from_checkpoint(args.checkpoint, user_code=not args.no_user_code,
                                                 **{k: v for k, v in flags.items() if v is not None})
        models.check_vocabulary(ctx.tokenizer, args.question)
    except (FileNotFoundError, OSError, ValueError) as e:
        return _fail(str(e), 1)
    s = ctx.settings
    max_new = args.max_new_tokens or s.max_completion_length
    answer = args.answer if args.answer is not None else ctx.task.answer(args.question)
    limit = getattr(ctx.policy.config, "max_position_embeddings", 1 << 30)
    prompt = ctx.prompt(args.question)
    n_prompt = len(ctx.prompt_ids(args.question))
    if n_prompt + max_new > limit:
        return _fail(f"the question is {n_prompt} tokens; with {max_new} new tokens it exceeds "
                     f"the model's context of {limit}", 1)
    try:
        rec = inspector.sample_group(
            ctx, args.question, answer, num_generations=s.num_generations, temperature=s.temperature,
            max_new_tokens=max_new, generator=torch.Generator(device=ctx.device).manual_seed(args.seed),
            step=source.step, prompt=(prompt, ctx.prompt_ids(args.question)))
    except (inspector.RequestError, ValueError) as e:
        return _fail(str(e), 1)
    rec["checkpoint"] = str(args.checkpoint)
    rec.pop("step")
    sys.stdout.write(to_json(rec) + "\n")
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    _setup_logging()
    _quiet_libraries()
    import torch

    from . import context, onnx_export

    if args.worker:  # the trainer's background exporter (onnx_export.Background): jobs on stdin
        answers = sys.stdout
        sys.stdout = sys.stderr  # stray prints must never reach the answers
        return onnx_export.worker_main(sys.stdin, answers, context.from_checkpoint)
    if not args.checkpoint or not args.out:
        return _fail("export-onnx needs --checkpoint and --out")

    try:
        ctx, source, run_dir = context.from_checkpoint(args.checkpoint, torch.device("cpu"), user_code=False)
        ckpt = Path(source.checkpoint)
        onnx_export.tokenizer_description(ctx.tokenizer, onnx_export.context_length(ctx.policy))
    except onnx_export.UnsupportedModel as e:
        return _fail(f"--checkpoint {args.checkpoint}: {e}", 1)
    except (FileNotFoundError, OSError, ValueError) as e:
        return _fail(str(e), 1)
    try:
        import onnxscript  # noqa: F401 - the dynamo exporter needs it; say so before a long trace
    except ImportError:
        return _fail("ONNX export needs the 'onnx' and 'onnxscript' packages (pip install -r trainer/requirements.txt)", 1)
    out = Path(args.out)
    try:
        manifest = onnx_export.Exporter().export(
            out, ctx.policy, ctx.reference if ctx.reference is not None else ctx.policy, ctx.tokenizer,
            step=source.step, checkpoint=str(ckpt.resolve()),
            max_prompt_length=ctx.settings.max_prompt_length if run_dir is not None else None)
    except OSError as e:
        return _fail(f"--out {out}: {e}", 1)
    sys.stdout.write(json.dumps({"out": str(out.resolve()), **manifest}) + "\n")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    sys.stderr = _TolerantStream(sys.__stderr__)
    _setup_logging()
    _quiet_libraries()
    import torch

    from . import context, inspector, protocol

    threads.configure()
    try:
        ctx, source, run_dir = context.from_checkpoint(args.checkpoint, user_code=not args.no_user_code)
    except (FileNotFoundError, OSError, ValueError) as e:
        return _fail(str(e), 1)
    stream = protocol.Stream(sys.__stdout__)
    sys.stdout = sys.stderr  # stray prints from libraries must never reach the protocol stream
    stream.send(protocol.STARTED, checkpoint=str(Path(source.checkpoint).resolve()), step=source.step,
                pid=os.getpid(), run_dir=str(run_dir.resolve()) if run_dir is not None else None,
                one_at_a_time=True, max_request_tokens=inspector.request_token_limit(ctx))
    return inspector.serve(ctx, source, stream, sys.stdin)


def cmd_import_trl(args: argparse.Namespace) -> int:
    """A finished TRL GRPO run (its output_dir) as a run directory (grpo/integrations/trl_import.py)."""
    _setup_logging()
    _quiet_libraries()
    from .integrations.trl_import import import_run

    if args.num_generations is not None and args.num_generations < 2:
        return _fail("--num-generations must be ≥ 2 (a group needs at least two completions)")
    try:
        counts = import_run(args.output_dir, args.run_dir, model=args.model, num_generations=args.num_generations)
    except (FileNotFoundError, ValueError, OSError) as e:
        return _fail(str(e), 1)
    sys.stdout.write(json.dumps({"run_dir": str(Path(args.run_dir).resolve()), **counts}) + "\n")
    return 0


def cmd_paradigm(args: argparse.Namespace) -> int:
    from . import paradigm

    _setup_logging()
    _quiet_libraries()
    if args.table:
        try:
            sys.stdout.write(paradigm.table(json.loads(Path(args.table).read_text(encoding="utf-8"))))
        except (OSError, ValueError, KeyError, TypeError) as e:
            return _fail(f"--table {args.table}: not a paradigm results file ({e})")
        return 0
    parent = Path(args.out) if args.out else Path("runs") / time.strftime("paradigm-%Y%m%d-%H%M%S")
    if parent.exists() and any(parent.iterdir()):
        return _fail(f"--out {parent} is not empty")
    try:
        names = args.methods.split(",") if args.methods else list(paradigm.methods.METHODS)
        for n in names:
            paradigm.methods.get(n)
        # the results go beside the runs unless a file is named: a committed result is replaced only by name
        results = Path(args.results) if args.results else parent / paradigm.RESULTS
        out = paradigm.run(parent, start=args.start, seeds=args.seeds, steps=args.steps, iterations=args.iterations,
                           sets=args.set, names=names, results=results, smoke=args.smoke)
    except (ConfigError, ValueError) as e:
        return _fail(str(e))
    except RuntimeError as e:
        return _fail(str(e), 1)
    sys.stdout.write(json.dumps(out, indent=1) + "\n")
    return 0


def cmd_check_rewards(args: argparse.Namespace) -> int:
    """Saved reward test cases against the current reward functions (grpo/rewardtests.py): 0 all agree, 1 some
    disagree, 2 a bad file or bad settings."""
    _setup_logging()
    _quiet_libraries()
    from . import rewardtests
    from .rundir import read_json_file

    try:
        base: dict = {}
        if args.run:
            base = read_json_file(Path(args.run) / "config.json")
            if not isinstance(base, dict):
                raise ConfigError(f"--run: {Path(args.run) / 'config.json'} must hold a JSON object of settings")
            base = {k: v for k, v in base.items() if k != config_mod.HISTORY}
        if args.config:
            base.update(config_mod.load_config_file(args.config))
        cfg = config_mod.build_config(base, args.set)
        report = rewardtests.check_file(args.file, cfg, args.tolerance, run_dir=args.run)
    except (ConfigError, ValueError, OSError) as e:  # plugins' refusals are ValueErrors naming the setting
        return _fail(str(e))
    if args.json:
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        sys.stderr.write(rewardtests.describe(report) + "\n")
    if report["cases"] == 0:
        return _fail(f"{args.file}: no usable reward test case")
    return 1 if report["disagree"] else 0


def cmd_user_code(args: argparse.Namespace) -> int:
    """The user code a run's settings name, where each module would be imported from and whether it would be
    refused, without importing anything: what the extension shows before it opens a run (plugins.py)."""
    from . import plugins
    from .rundir import resolve_checkpoint, run_settings

    try:
        _, run_dir = resolve_checkpoint(args.checkpoint)
    except FileNotFoundError as e:
        return _fail(str(e), 1)
    found = [c.as_dict(plugins.refusal(c, run_dir)) for c in plugins.named_code(run_settings(run_dir))]
    sys.stdout.write(json.dumps({"run_dir": str(run_dir.resolve()) if run_dir else None, "modules": found}) + "\n")
    return 0


def cmd_schema(_: argparse.Namespace) -> int:
    sys.stdout.write(json.dumps(config_mod.schema(), indent=1) + "\n")
    return 0


def _no_user_code(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-user-code", action="store_true", help="import none of the code the run's settings "
                        "name (task, reward_function): the task then knows no answers and rewards come from the "
                        "verifier")


def _training_commands(sub) -> None:
    t = sub.add_parser("train", help="train (with no options: the embedded default, SFT then GRPO on arith)")
    t.add_argument("--config", help="JSON file of settings")
    t.add_argument("--run-dir", help="run directory (default: runs/<timestamp>)")
    t.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its latest checkpoint")
    t.add_argument("--allow-changed-settings", action="store_true", help="with --resume: allow settings that say "
                   "what the run trains (model, task, seed, reward, data columns, LoRA shape) to change; config.json's "
                   "history records it")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one setting")
    t.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    t.add_argument("--stream", action="store_true", help="write the JSON-lines protocol stream to stdout even when "
                   "it is a terminal (it always does to a pipe or a file)")
    t.set_defaults(func=cmd_train)

    f = sub.add_parser("preflight", help="before training: one real step from the start policy (after SFT, reused "
                       "from the cache) → the predicted share of groups with signal, truncation, reward spread, "
                       "lengths, time and memory, each problem with a concrete change; exit 0 healthy, 1 predicted "
                       "dead or wasteful, 2 bad settings")
    f.add_argument("--config", help="JSON file of settings (as train)")
    f.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one setting (as train)")
    f.add_argument("--questions", type=int, default=0, help="questions to sample (default: questions_per_step)")
    f.add_argument("--json", action="store_true", help="print the report as one JSON object (records.PreflightReport)")
    f.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    f.set_defaults(func=cmd_preflight)

    g = sub.add_parser("paradigm", help="the paper's §5 comparison: SFT, RFT, Online RFT, GRPO (outcome, process, "
                       "iterative with a learned PRM) and PPO from one SFT start, several seeds each; results JSON + PNG")
    g.add_argument("--start", help="the SFT start: a checkpoint directory (default: an SFT run of the settings)")
    g.add_argument("--out", help="parent folder of the runs (default: runs/paradigm-<time>)")
    g.add_argument("--seeds", type=int, default=3, help="seeds per method")
    g.add_argument("--steps", type=int, default=40, help="steps per method (questions_per_step × G completions each)")
    g.add_argument("--iterations", type=int, default=2, help="iterative GRPO: π_ref resets and PRM re-trainings")
    g.add_argument("--methods", help="comma-separated subset of the methods (default: all)")
    g.add_argument("--results", help="results JSON, a PNG beside it (default: paradigm.json in --out's folder; "
                   "name bench/results/paradigm-cpu.json to replace the committed results)")
    g.add_argument("--smoke", action="store_true", help="tiny settings, for the test suite")
    g.add_argument("--table", metavar="RESULTS", help="print a results JSON as docs/trainer.md's Markdown table; trains nothing")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting for every run")
    g.set_defaults(func=cmd_paradigm)


def _checkpoint_commands(sub) -> None:
    e = sub.add_parser("eval", help="greedy accuracy, pass@k and maj@k of a checkpoint on a JSONL or Parquet file "
                       "of question/answer rows (the run's prompt, columns and verifier)")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--max-new-tokens", type=int, default=64)
    e.add_argument("--samples", type=int, default=16, help="n completions per question for pass@k / maj@k "
                   "(0: greedy only)")
    e.add_argument("--k", default="1,4,8,16", help="comma-separated k for pass@k and maj@k (k ≤ --samples)")
    e.add_argument("--temperature", type=float, default=1.0, help="sampling temperature for pass@k / maj@k")
    e.add_argument("--seed", type=int, default=0)
    _no_user_code(e)
    e.set_defaults(func=cmd_eval)

    s = sub.add_parser("sample", help="sample a group from a checkpoint as its run's training would and print it "
                       "as JSON (the flags below default to the run's settings)")
    s.add_argument("--checkpoint", required=True, help="a checkpoint directory, or a run directory (its latest)")
    s.add_argument("--question", required=True)
    s.add_argument("--answer", help="the expected answer (default: the task's, if it knows the question)")
    s.add_argument("--num-generations", type=int)
    s.add_argument("--max-new-tokens", type=int)
    s.add_argument("--temperature", type=float)
    s.add_argument("--top-p", type=float)
    s.add_argument("--scale-rewards", choices=("group", "batch", "none"))
    s.add_argument("--process", action="store_true", help="process supervision (per-step rewards)")
    s.add_argument("--seed", type=int, default=0)
    _no_user_code(s)
    s.set_defaults(func=cmd_sample)

    x = sub.add_parser("export-onnx", help="export a checkpoint's policy and reference to ONNX (per-token log-probs) "
                       "with a tokenizer description, for the editor")
    x.add_argument("--checkpoint", help="a checkpoint directory, or a run directory (its latest)")
    x.add_argument("--out", help="folder to write policy.onnx, reference.onnx, tokenizer.json, "
                   "manifest.json into")
    x.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # the trainer's background exporter
    x.set_defaults(func=cmd_export_onnx)

    r = sub.add_parser("replay", help="re-apply a logged step from the state before it, under the run's settings "
                       "and under alternative objectives: per-token Δ log π, loss, gradient norm, signal ledger")
    r.add_argument("--run-dir", required=True, help="the run directory (its replay/step_N/ records)")
    r.add_argument("--step", type=int, required=True, help="a logged step (log_samples_steps) with a replay record")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                   help="one alternative: the objective settings it changes (repeat for more alternatives)")
    r.add_argument("--json", action="store_true", help="print the whole result (ReplayResult) as one JSON line")
    r.set_defaults(func=cmd_replay)

    v = sub.add_parser("serve", help="answer sample_group / score / compare requests about a checkpoint on "
                       "stdin, one JSON line each, until stdin closes or a stop request")
    v.add_argument("--checkpoint", required=True, help="a checkpoint directory, or a run directory (its latest)")
    _no_user_code(v)
    v.set_defaults(func=cmd_serve)


def _data_commands(sub) -> None:
    d = sub.add_parser("decontaminate", help="find training questions sharing a 10-gram with (or, short, equal "
                       "to) an evaluation question; with --out write the training rows without them")
    d.add_argument("--train", required=True, help="JSONL or Parquet file of training rows")
    d.add_argument("--eval", required=True, help="JSONL or Parquet file of evaluation rows")
    d.add_argument("--out", help="write the kept training rows here (JSONL, each row whole)")
    d.add_argument("--question-column", default="question", help="the training file's question column")
    d.add_argument("--eval-question-column", default="question", help="the evaluation file's question column")
    d.set_defaults(func=cmd_decontaminate)

    i = sub.add_parser("import-trl", help="make a run directory of a finished TRL GRPO run: log history → "
                       "metrics, completions/*.parquet → groups, checkpoint-N → checkpoints")
    i.add_argument("output_dir", metavar="OUTPUT_DIR", help="TRL's output_dir")
    i.add_argument("--run-dir", required=True, help="the run directory to write (must not hold a run)")
    i.add_argument("--model", help="the local model directory TRL started from (becomes step_000000, the reference)")
    i.add_argument("--num-generations", type=int, help="G (default: inferred from the completions tables)")
    i.set_defaults(func=cmd_import_trl)

    k = sub.add_parser("check-rewards", help="run saved reward test cases (JSONL: question, answer, completion, "
                       "expected, …; docs/trainer.md) through the current reward functions and report which now "
                       "disagree with `expected`: exit 0 all agree, 1 some disagree, 2 a bad file or settings")
    k.add_argument("file", metavar="FILE", help="the JSONL file of reward test cases")
    k.add_argument("--run", help="take the settings (reward_funcs, reward_weights, verifier, …) from this run "
                   "directory's config.json; its user code is checked as a shared run's")
    k.add_argument("--config", help="JSON file of settings")
    k.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one setting")
    k.add_argument("--tolerance", type=float, default=1e-6, help="allowed |reward − expected| (a case's own "
                   "`tolerance` wins)")
    k.add_argument("--json", action="store_true", help="print the whole report as one JSON object on stdout")
    k.set_defaults(func=cmd_check_rewards)

    u = sub.add_parser("user-code", help="print the code (task, reward_function) a run's settings name, the file each "
                       "module would be imported from and whether it is refused, as JSON; imports nothing")
    u.add_argument("checkpoint", metavar="RUN", help="a run directory or one of its checkpoints")
    u.set_defaults(func=cmd_user_code)

    c = sub.add_parser("config-schema", help="print every setting with its type, default and bounds as JSON")
    c.set_defaults(func=cmd_schema)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m grpo", description="GRPO trainer (DeepSeekMath §4)")
    sub = p.add_subparsers(dest="command", required=True)
    _training_commands(sub)
    _checkpoint_commands(sub)
    _data_commands(sub)
    return p


def _user_modules_last() -> None:
    """The extension starts Python outside the workspace with a safe sys.path (PYTHONSAFEPATH) and names the
    workspace in GRPO_WORKSPACE: user modules (a reward_function's) are found there, after every installed
    package, so a `torch.py` or `grpo/` in the workspace cannot shadow the real ones."""
    ws = os.environ.get("GRPO_WORKSPACE")
    if ws and os.path.isdir(ws) and ws not in sys.path:
        sys.path.append(ws)


def main(argv: list[str] | None = None) -> int:
    _user_modules_last()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:  # Ctrl-C: one line, the shell's status for SIGINT, no traceback
        try:
            sys.__stderr__.write("grpo: interrupted\n")
            sys.__stderr__.flush()
        except (OSError, ValueError, AttributeError):
            pass
        return 130
