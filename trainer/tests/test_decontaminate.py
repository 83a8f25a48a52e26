"""Decontamination (10-gram exact match, DeepSeekMath §2) and the guarantee that no held-out question is trained on."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from grpo import config, decontaminate, tasks
from grpo.tasks import ArithTask, FileTask, arith

ROOT = Path(__file__).resolve().parents[2]
LONG = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May."


def test_tokens_normalise_case_space_and_punctuation_but_keep_operators():
    assert decontaminate.tokens("What is 3+4?") == decontaminate.tokens("what is 3 + 4")
    assert decontaminate.tokens("3+4") != decontaminate.tokens("3*4")
    assert decontaminate.tokens("Ｈｅｌｌｏ, World.") == ["hello", "world"]  # NFKC folds full-width letters


def test_a_shared_ten_gram_is_contamination_and_nine_is_not():
    index = decontaminate.Index.of([LONG])
    words = LONG.split()
    assert index.contaminated("Preamble text. " + " ".join(words[3:13]) + " and a different ending")  # 10 shared
    nine = " ".join(words[3:12])
    assert not index.contaminated("Preamble text here, " + nine + " but then it goes elsewhere entirely")
    assert index.contaminated(LONG.upper().replace(",", " ,"))


def test_short_questions_match_only_when_identical_after_normalisation():
    index = decontaminate.Index.of(["(3+1)*3", "2-3-2"])
    assert index.contaminated(" ( 3 + 1 ) * 3 ")
    assert not index.contaminated("(3+1)*4") and not index.contaminated("2-3")
    found = decontaminate.check(["1+1", "2 - 3 - 2", "(3+1)*3"], ["(3+1)*3", "2-3-2"])
    assert found.matched == [1, 2] and found.checked == 3


def test_the_arith_generator_never_yields_a_held_out_question():
    # one operation: only 300 distinct questions, so a third of the distribution is held out and the generator
    # must skip those, for SFT (which draws from Task.questions too) and GRPO alike
    ds = ArithTask(eval_size=100, min_ops=1, max_ops=1)
    held = {r["question"] for r in ds.held_out()}
    seen = {r["question"] for _ in range(200) for r in ds.questions(random.Random(len(held)), 32)}
    rng = random.Random(1)
    seen |= {r["question"] for _ in range(300) for r in ds.questions(rng, 32)}
    assert len(held) == 100 and not (seen & held)
    assert len(seen) == 200  # everything else is reachable


def test_held_out_file_for_arith_is_excluded_from_training(tmp_path):
    f = tmp_path / "held.jsonl"
    held = [r for r in arith.make_split(5, 150, min_ops=1, max_ops=1)]
    f.write_text("".join(json.dumps({"question": r["question"].replace("+", " + "), "answer": r["answer"]}) + "\n"
                         for r in held))
    ds = tasks.load(config.build_config({"arith_min_ops": 1, "arith_max_ops": 1, "eval_size": 150, "held_out": str(f)}))
    assert len(ds.held_out()) == 150
    rng = random.Random(0)
    seen = {r["question"] for _ in range(300) for r in ds.questions(rng, 32)}
    assert not (seen & {r["question"] for r in held}) and len(seen) == 150


def _write(path, questions):
    path.write_text("".join(json.dumps({"question": q, "answer": "1", "extra": i}) + "\n" for i, q in enumerate(questions)))


def test_a_task_file_is_decontaminated_against_its_held_out_file(tmp_path):
    train, held = tmp_path / "train.jsonl", tmp_path / "held.jsonl"
    _write(train, ["1+1", "what is 2 + 2", LONG.lower(), "A new question about apples"] * 2)
    _write(held, ["What is 2+2?", LONG])
    ds = tasks.load(config.build_config({"task": str(train), "eval_size": 10, "held_out": str(held)}))
    assert ds.decontamination["matched"] == 4 and ds.decontamination["action"] == "removed"
    assert sorted(r["question"] for r in ds.train) == ["1+1", "1+1"] + ["A new question about apples"] * 2
    kept = tasks.load(config.build_config({"task": str(train), "eval_size": 10, "held_out": str(held), "decontaminate": "report"}))
    assert kept.decontamination["matched"] == 4 and len(kept.train) == 8


def test_a_split_task_file_drops_duplicates_of_its_held_out_rows(tmp_path):
    train = tmp_path / "train.jsonl"
    _write(train, [f"question number {i}" for i in range(30)] * 2)  # every question twice
    ds = FileTask(train, eval_size=3, seed=0)
    held = {r["question"] for r in ds.held_out()}
    assert len(held) == 3 and not (held & {r["question"] for r in ds.train})
    assert ds.decontamination["matched"] == 3


def test_cli_reports_and_writes_the_kept_rows_whole(tmp_path):
    train, held, out = tmp_path / "train.jsonl", tmp_path / "held.jsonl", tmp_path / "clean.jsonl"
    _write(train, ["1+1", "2*3", LONG])
    train.write_text(train.read_text() + "not json\n")
    _write(held, ["2 * 3", LONG.replace("April", "June")])
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer")}
    p = subprocess.run([sys.executable, "-m", "grpo", "decontaminate", "--train", str(train), "--eval", str(held),
                        "--out", str(out)], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["matched"] == 2 and report["kept"] == 1 and report["bad_rows"]["train"] == 1
    assert [json.loads(line) for line in out.read_text().splitlines()] == [{"question": "1+1", "answer": "1", "extra": 0}]
    p = subprocess.run([sys.executable, "-m", "grpo", "decontaminate", "--train", str(tmp_path / "none.jsonl"),
                        "--eval", str(held)], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 1 and "--train" in p.stderr
