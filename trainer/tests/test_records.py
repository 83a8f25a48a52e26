"""The record contract (grpo/records.py): its validator, and that what the trainer really writes, says and
answers conforms to it and to docs/run-directory.md."""

import json
import re
import typing
from pathlib import Path

import pytest
import torch

from grpo import context, inspector, protocol, records

DOCS = (Path(__file__).resolve().parents[2] / "docs" / "run-directory.md").read_text(encoding="utf-8")


def tokens(n):
    return {"text": ["a"] * n, "logp": [-1.0] * n, "old_logp": [-1.0] * n, "ref_logp": [-1.0] * n,
            "kl": [0.0] * n, "advantage": [0.5] * n, "entropy": [1.0] * n}


def group():
    return {"step": 1, "question": "1+2", "answer": "3", "prompt": "1+2\n", "completions": ["3", "4"],
            "rewards": [1.0, 0.0], "correct": [True, False], "advantages": [0.7, -0.7], "truncated": [False, False],
            "tokens": [tokens(1), tokens(1)], "step_rewards": [[1.0], [0.0]], "step_ends": [[0], [0]]}


def test_a_sequence_level_group_conforms():
    """import-trl's groups have no per-token arrays (TRL's completion tables keep none)."""
    seq = {k: v for k, v in group().items() if k not in ("tokens", "truncated", "step_rewards", "step_ends")}
    assert records.validate("GroupRecord", {**seq, "level": "sequence"}) == []
    assert records.validate("GroupRecord", {**seq, "truncated": [True]}) == [
        "GroupRecord.truncated has 1 entries for 2 completions"]


def test_the_validator_names_what_is_wrong_and_keeps_unknown_fields():
    assert records.validate("GroupRecord", {**group(), "future_field": {"x": 1}}) == []
    assert records.validate("GroupRecord", {**group(), "rewards": [1.0]}) == [
        "GroupRecord.rewards has 1 entries for 2 completions"]
    g = group()
    g["tokens"][1]["kl"] = []
    assert records.validate("GroupRecord", g) == ["GroupRecord.tokens[1].kl has 0 values for 1 tokens"]
    assert records.validate("GroupRecord", {**group(), "step_ends": [[0, 1], [0]]}) == [
        "GroupRecord.step_ends[0] and GroupRecord.step_rewards[0] differ in length"]
    assert records.validate("MetricsRow", {"step": 1, "kl": None, "new/metric": 2.5}) == []
    assert records.validate("MetricsRow", {"step": 1.5, "kl": "x"}) == [
        "MetricsRow.step: '1.5' is not a whole number", "MetricsRow.kl: 'x' is not a finite number or null"]
    # events are checked by kind; a kind from a newer trainer is kept with only the common fields checked
    assert records.validate("KnownEvent", {"kind": "eval", "time": 1.0, "step": 2, "n": 4}) == ["KnownEvent.accuracy is missing"]
    assert records.validate("KnownEvent", {"kind": "someday", "time": 1.0, "step": 2, "x": [1]}) == []
    assert records.validate("TrainerMessage", {"v": 1, "type": "nope"}) == ["TrainerMessage: unknown type 'nope'"]
    assert records.validate("TrainerMessage", {"v": 1, "type": "event", "row": {"kind": "phase", "time": 1.0, "step": 0, "phase": "later"}})


def test_protocol_names_are_the_records_values():
    for name in ("started", "status", "progress", "metrics", "samples", "event", "response", "pause", "resume",
                 "stop", "save_checkpoint", "sample_group", "score", "compare", "running", "paused", "stopped",
                 "finished", "failed"):
        assert getattr(protocol, name.upper()) == name
    assert protocol.PROTOCOL_VERSION == records.PROTOCOL_VERSION


def test_the_docs_describe_every_field():
    """docs/run-directory.md names every field of every record, and every event kind (in backticks or as a
    JSON example's key): a field added to records.py without a word in the docs fails here."""
    documented = set(re.findall(r"`([^`\s]+)`", DOCS)) | set(re.findall(r'"([a-z_/]+)":', DOCS))
    wanted = {f["name"] for r in records.schema()["records"].values() for f in r["fields"]} | set(records.EVENTS)
    assert sorted(wanted - documented) == []


def test_the_inspector_checks_parameters_with_the_records_own_definition():
    """No second table: every field of a request's params record is accepted, its required ones are asked
    for, a mistyped one and an unknown name are refused, each named."""
    for type_, (params, _) in records.INSPECT.items():
        hints = typing.get_type_hints(params)
        required = {k: ("3+1" if hints[k] is str else 1) for k in params.__required_keys__}
        assert inspector.params_of({"v": 1, "type": type_, "id": "x", **required}) == required
        for name in params.__required_keys__:
            with pytest.raises(inspector.RequestError, match=f"needs the parameter '{name}'"):
                inspector.params_of({"type": type_, **{k: v for k, v in required.items() if k != name}})
        for name in hints:
            with pytest.raises(inspector.RequestError, match=f"parameter '{name}'"):
                inspector.params_of({"type": type_, **required, name: [1]})
        with pytest.raises(inspector.RequestError, match="unknown parameter 'bogus'"):
            inspector.params_of({"type": type_, **required, "bogus": 1})


def test_real_inspection_answers_conform(tiny_run):
    ctx, source, _ = context.from_checkpoint(tiny_run / "checkpoints" / "step_000005", torch.device("cpu"))
    sch = records.schema()
    for type_, params in (("sample_group", {"question": "(3+1)*3", "num_generations": 3, "seed": 1}),
                          ("score", {"text": "3+1=4", "prompt": "(3+1)\n"}),
                          ("compare", {"question": "2*3", "max_completion_length": 8})):
        answer = inspector.answer(ctx, source, {"v": 1, "type": type_, "id": "x", **params})
        assert answer["ok"], answer
        result = json.loads(protocol.to_json(answer["result"]))  # as it crosses the pipe
        assert records.validate(records.INSPECT[type_][1].__name__, result, sch) == [], type_
        message = json.loads(protocol.to_json({"v": 1, "type": "response", "id": "x", **answer}))
        assert records.validate("TrainerMessage", message, sch) == []


def test_the_schema_is_plain_json():
    """What scripts/gen-protocol.mjs reads: JSON, every reference resolvable."""
    sch = json.loads(json.dumps(records.schema()))
    refs = re.findall(r'"t": "ref", "name": "(\w+)"', json.dumps(sch))
    assert refs and all(r in sch["records"] for r in refs)
    for u in sch["unions"].values():
        assert all(v in sch["records"] for v in u["variants"].values())


@pytest.mark.parametrize("bad", ["{\"state\": \"running\"}"])
def test_check_run_dir_reports_a_bad_status(tmp_path, bad):
    (tmp_path / "status.json").write_text(bad)
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "kl": 0.1}\n{"step": 2, "kl"')  # a torn last line
    assert records.check_run_dir(tmp_path) == ["RunStatus.protocol is missing", "RunStatus.phase is missing",
                                               "RunStatus.pid is missing", "RunStatus.step is missing",
                                               "RunStatus.max_steps is missing"]
