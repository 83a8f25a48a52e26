"""Tasks as plug-ins (tasks/base.py): `load` turns the `task` setting into a Task."""

from __future__ import annotations

from pathlib import Path

from .. import plugins
from .arith import ArithTask
from .base import Task
from .files import FileTask

BUILTIN = {"arith": ArithTask}


def load(settings) -> Task:
    """The task the `task` setting names: a built-in name, a JSONL/Parquet file, or `module:object` (a Task,
    or a callable taking the settings and returning one)."""
    spec = settings.task
    if spec in BUILTIN:
        return BUILTIN[spec](settings.eval_size)
    if Path(spec).is_file():
        return FileTask(spec, settings.eval_size, settings.seed, settings.question_column, settings.answer_column,
                        settings.answer_format)
    if ":" not in spec:
        raise FileNotFoundError(f"setting 'task': {spec!r} is neither a built-in task ({', '.join(BUILTIN)}), a "
                                "JSONL or Parquet file, nor a 'module:object' path")
    obj = plugins.load_object(spec, "task")
    task = obj
    if not isinstance(obj, Task) and callable(obj):
        try:
            task = obj(settings)
        except Exception as e:  # noqa: BLE001 - user code: report it with the setting's name
            raise ValueError(f"setting 'task': {spec}(settings) failed: {type(e).__name__}: {e}") from None
    if not isinstance(task, Task):
        raise ValueError(f"setting 'task': {spec} is not a grpo.tasks.Task (nor a callable returning one)")
    return task


__all__ = ["ArithTask", "FileTask", "Task", "load", "BUILTIN"]
