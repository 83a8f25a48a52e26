"""Tasks as plug-ins: built-in names, files and `module:object` user tasks behind one interface."""

import json
import sys

import pytest

from child import FIXTURES
from grpo import tasks
from grpo.config import Config
from grpo.tasks import ArithTask, FileTask, Task


@pytest.fixture
def user_tasks(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES))
    yield
    sys.modules.pop("half_task", None)


def test_the_setting_picks_the_task(tmp_path, user_tasks):
    assert isinstance(tasks.load(Config(task="arith", eval_size=5)), ArithTask)
    f = tmp_path / "d.jsonl"
    f.write_text("".join(json.dumps({"question": f"q{i}", "answer": f"#### {i}"}) + "\n" for i in range(20)))
    file_task = tasks.load(Config(task=str(f), eval_size=5))
    assert isinstance(file_task, FileTask) and len(file_task.held_out()) == 2 and file_task.answer("q3") == "3"
    assert not file_task.has_solutions and not file_task.has_steps
    for spec in ("half_task:TASK", "half_task:make"):
        user = tasks.load(Config(task=spec))
        assert isinstance(user, Task) and user.name == "half" and user.has_solutions and not user.has_steps


@pytest.mark.parametrize("spec,message", [
    ("nowhere.jsonl", "neither a built-in task"),
    ("no_such_module_x:TASK", "cannot import 'no_such_module_x'"),
    ("half_task:nothing", "has no 'nothing'"),
    ("half_task:__name__", "is a str, not a task defined in Python"),
    ("half_task:make_broken", "half_task:make_broken(settings) failed: TypeError"),
    ("json:dumps", "'json' is a standard-library module"),
])
def test_a_bad_task_setting_is_named(spec, message, user_tasks):
    with pytest.raises((ValueError, FileNotFoundError), match="setting 'task'") as e:
        tasks.load(Config(task=spec))
    assert message in str(e.value)


def test_process_supervision_needs_a_step_checker(user_tasks):
    from grpo.rewards import Rewarder

    with pytest.raises(ValueError, match="step checker"):
        Rewarder("math_verify", "process", task=tasks.load(Config(task="half_task:TASK")))
    scored = Rewarder("number", "process", task=ArithTask(1))(["2*3"], ["2*3=6\n#### 6"], ["6"])
    assert scored.rewards == [1.0] and scored.step_rewards == [[1.0, 1.0]]
