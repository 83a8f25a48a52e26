"""Memory per process of training with and without sharding (setting `fsdp`), on CPU: a random Qwen2 model
(trainer/grpo/tiny_hf.py) at two widths, trained for two AdamW steps on the trainer's own forward
(logprobs.Scorer, chunked log-probs) by 1 process, by 2 data-parallel processes (DDP) and by 2 sharded ones
(FSDP2, distributed.shard), each under torchrun with gloo.

Per process it records the bytes of the tensors training keeps (weights, gradients and AdamW's two moments:
the local shards under FSDP), counted exactly, and the process's resident memory: its peak (ru_maxrss, which
includes loading the whole model before sharding: every rank loads it whole today) and its size after the
second step (the steady state), both above the process's size before the model was built. The 1.5B/7B rows
are derived, not measured: 16 bytes a parameter (float32 weights, gradients and two AdamW moments) divided by
the processes when sharded, which is what the measured rows check.

    PYTHONPATH=trainer .venv/bin/python bench/fsdp_memory.py   # about 2 minutes on 2 cores
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "fsdp-memory-cpu.json"
WIDTHS = {"small": dict(hidden_size=512, intermediate_size=1408, num_hidden_layers=8, num_attention_heads=8,
                        num_key_value_heads=2),
          "large": dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=8, num_attention_heads=16,
                        num_key_value_heads=2)}
SETUPS = [("one process", 1, False), ("2 processes, data parallel (DDP)", 2, False),
          ("2 processes, sharded (fsdp=full_shard)", 2, True)]
MB = 1 << 20


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(model_dir: str, sharded: bool, out: str) -> None:
    import torch

    from grpo import distributed, logprobs, models, rollout

    distributed.init()
    base = rss()
    policy, _ = models.load(model_dir, 0, torch.device("cpu"))
    scorer = logprobs.Scorer(policy, chunk_tokens=256)
    if sharded:
        scorer = distributed.shard(scorer, policy, torch.float32, offload=False)
    else:
        scorer = distributed.wrap(scorer, torch.device("cpu"))
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # the whole model a rank loaded before sharding goes back
    params = [p for p in policy.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    g = torch.Generator().manual_seed(distributed.rank())
    n, p_len, c_len = 4, 16, 16
    batch = rollout.Batch(torch.randint(3, 300, (n, p_len), generator=g), torch.ones(n, p_len, dtype=torch.long),
                          torch.randint(3, 300, (n, c_len), generator=g), torch.ones(n, c_len, dtype=torch.long), None)
    t0 = time.time()
    for _ in range(2):
        opt.zero_grad()
        logp, _ = logprobs.score(scorer, batch)
        (-logp.mean()).backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
    seconds = (time.time() - t0) / 2

    def local(t):
        return t.to_local() if hasattr(t, "to_local") else t

    weights = sum(local(p).numel() * local(p).element_size() for p in policy.parameters())
    grads = sum(local(p.grad).numel() * local(p.grad).element_size() for p in params if p.grad is not None)
    moments = sum(local(v).numel() * local(v).element_size() for s in opt.state.values() for k, v in s.items()
                  if k in ("exp_avg", "exp_avg_sq"))
    row = {"rank": distributed.rank(), "parameters": sum(p.numel() for p in policy.parameters()),
           "weights_mb": weights / MB, "grads_mb": grads / MB, "adam_mb": moments / MB,
           "state_mb": (weights + grads + moments) / MB,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB - base / MB,
           "steady_rss_mb": (rss() - base) / MB, "seconds_per_step": seconds}
    rows = distributed.gather(row)
    if distributed.is_main():
        Path(out).write_text(json.dumps(rows))
    distributed.shutdown()


def main() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    sys.path.insert(0, str(ROOT / "trainer"))
    from hostinfo import cpu_model

    from grpo import tiny_hf

    results, t_start = [], time.time()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "trainer"), "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        for name, shape in WIDTHS.items():
            model = tiny_hf.write_checkpoint(Path(tmp) / name, "qwen2", **shape)
            for label, procs, sharded in SETUPS:
                out = Path(tmp) / f"{name}-{procs}-{sharded}.json"
                args = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs), "--standalone",
                        __file__, "--worker", str(model), "1" if sharded else "0", str(out)]
                subprocess.run(args, check=True, env=env, capture_output=True, timeout=600)
                ranks = json.loads(out.read_text())
                results.append({"model": name, **shape, "setup": label, "processes": procs, "sharded": sharded,
                                "parameters": ranks[0]["parameters"],
                                "per_process": [{k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items()
                                                 if k != "parameters"} for r in ranks]})
                r0 = ranks[0]
                print(f"{name:5s} {r0['parameters'] / 1e6:6.1f}M  {label:40s} state {r0['state_mb']:7.1f} MB  "
                      f"steady RSS {r0['steady_rss_mb']:7.1f} MB  peak RSS {r0['peak_rss_mb']:7.1f} MB")
    derived = []
    for size, n in (("1.5B", 1.54e9), ("7B", 7.6e9)):
        for gpus in (1, 2, 8):
            derived.append({"model": size, "parameters": n, "gpus": gpus,
                            "data_parallel_gb_per_gpu": round(16 * n / 1e9, 1),
                            "sharded_gb_per_gpu": round(16 * n / gpus / 1e9, 1)})
    OUT.write_text(json.dumps({
        "machine": cpu_model(), "torch": __import__("torch").__version__, "date": time.strftime("%Y-%m-%d"),
        "seconds": round(time.time() - t_start, 1),
        "what": "per process: bytes of weights + gradients + AdamW moments kept (state_mb, exact), resident memory "
                "above the process before the model was built after the 2nd step (steady_rss_mb) and at its peak "
                "(peak_rss_mb; includes loading the whole model on every rank before sharding)",
        "measured": results,
        "derived_not_measured": {
            "rule": "float32 weights, gradients and two AdamW moments = 16 bytes a parameter, divided by the "
                    "processes when sharded (the measured state_mb rows show exactly that split); activations, "
                    "the gathered weights while sampling (one whole 16-bit copy per GPU: 2 bytes a parameter) and "
                    "the CUDA context come on top",
            "rows": derived}}, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3] == "1", sys.argv[4])
    else:
        main()
