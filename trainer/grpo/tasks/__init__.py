"""Tasks as plug-ins (tasks/base.py): `load` turns the `task` setting into a Task."""

from __future__ import annotations

from pathlib import Path

from .. import data, plugins
from .arith import ArithTask
from .base import Task
from .files import FileTask

BUILTIN = {"arith": ArithTask}


def load(settings, run_dir=None) -> Task:
    """The task the `task` setting names: a built-in name, a JSONL/Parquet file, or `module:object` (a Task,
    or a callable taking the settings and returning one), never imported from a run directory (`run_dir`: the
    run whose settings these are; plugins.py says what else is refused)."""
    spec = settings.task
    if spec in BUILTIN:
        return BUILTIN[spec].from_settings(settings, held_out_rows(settings))
    if Path(spec).is_file():
        return FileTask.from_settings(settings, held_out_rows(settings))
    if ":" not in spec:
        raise FileNotFoundError(f"setting 'task': {spec!r} is neither a built-in task ({', '.join(BUILTIN)}), a "
                                "JSONL or Parquet file, nor a 'module:object' path")
    obj = plugins.load_object(spec, "task", run_dir, accept=lambda o: isinstance(o, Task) or callable(o))
    task = obj
    if not isinstance(obj, Task) and callable(obj):
        try:
            task = obj(settings)
        except Exception as e:  # noqa: BLE001 - user code: report it with the setting's name
            raise ValueError(f"setting 'task': {spec}(settings) failed: {type(e).__name__}: {e}") from None
    if not isinstance(task, Task):
        raise ValueError(f"setting 'task': {spec} is not a grpo.tasks.Task (nor a callable returning one)")
    return task


def held_out_rows(settings) -> list[dict] | None:
    """The `held_out` setting's evaluation rows (its first `eval_size`), or None when it is empty."""
    if not settings.held_out:
        return None
    if not Path(settings.held_out).is_file():
        raise FileNotFoundError(f"setting 'held_out': {settings.held_out!r} is not a JSONL or Parquet file")
    rows, bad = data.read_rows(settings.held_out, settings.question_column, settings.answer_column,
                               settings.answer_format)
    if not rows:
        raise ValueError(f"setting 'held_out': {settings.held_out} has no usable rows: "
                         f"{bad.describe() or 'it is empty'}")
    return rows[: settings.eval_size]


__all__ = ["ArithTask", "FileTask", "Task", "load", "BUILTIN"]
