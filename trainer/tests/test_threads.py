"""The trainer's CPU threads: a short OpenMP spin unless the user chose a wait, and as many threads as the
cores this process may use (its affinity, capped by a cgroup CPU quota)."""

import os
import subprocess
import sys

from grpo import threads


def test_a_cgroup_quota_caps_the_threads_at_its_cpus_rounded_up(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a CPU
    assert threads.usable_cores(tmp_path) == 1
    (tmp_path / "cpu.max").write_text(f"{affinity * 100000 + 1} 100000\n")  # a little over the affinity
    assert threads.usable_cores(tmp_path) == affinity
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.usable_cores(tmp_path) == affinity


def test_cgroup_v1_quota_and_no_cgroup_at_all(tmp_path):
    v1 = tmp_path / "cpu"
    v1.mkdir()
    (v1 / "cpu.cfs_quota_us").write_text("100000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert threads.usable_cores(tmp_path) == 1
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")  # no quota
    assert threads.usable_cores(tmp_path) == len(os.sched_getaffinity(0))
    assert threads.usable_cores(tmp_path / "missing") == len(os.sched_getaffinity(0))


def _child(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_the_trainer_entry_point_asks_for_a_short_spin_before_torch_loads_and_keeps_the_users_choice():
    code = ("import sys, runpy; sys.argv = ['grpo', '--help']\n"
            "try:\n    runpy.run_module('grpo', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "import os; print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('KMP_BLOCKTIME'), "
            "os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)")
    path = os.environ.get("PYTHONPATH", "")
    assert _child(code, PYTHONPATH=path).splitlines()[-1] == "1000 1 None False"
    assert _child(code, PYTHONPATH=path, GOMP_SPINCOUNT="50").splitlines()[-1] == "50 1 None False"
    # a wait policy of the user's own: no spin count is added beside it
    assert _child(code, PYTHONPATH=path, OMP_WAIT_POLICY="PASSIVE").splitlines()[-1] == "None None PASSIVE False"


def test_configure_uses_the_usable_cores_unless_omp_num_threads_says():
    assert _child("from grpo import threads; import torch; print(threads.configure(), torch.get_num_threads())",
                  PYTHONPATH=os.environ.get("PYTHONPATH", "")) == f"{threads.usable_cores()} {threads.usable_cores()}"
    assert _child("from grpo import threads; import torch; print(threads.configure(), torch.get_num_threads())",
                  PYTHONPATH=os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1") == "1 1"
