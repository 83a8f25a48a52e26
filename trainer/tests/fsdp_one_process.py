"""Run by test_fsdp.py under `torchrun --nproc_per_node 2`: FSDP2 (distributed.shard) against one process.

Each rank trains the built-in model on its half of a fixed batch through the sharded training forward
(logprobs.Scorer as FSDP's root); rank 0 also trains an unsharded copy, in this one process, on the whole
batch with the loss averaged over the two halves (what gradient averaging over ranks computes). After a few
AdamW steps with gradient clipping the gathered weights must equal the one-process weights; greedy sampling
on the gathered weights (distributed.gathered) must give the one-process completions. Prints one JSON line
on rank 0. With a model directory as its argument: the same with LoRA adapters (the base frozen)."""

import copy
import json
import sys

import torch

from grpo import distributed, logprobs, models, rollout

STEPS, N, P, C = 3, 8, 5, 6


def loss_of(scorer, batch, adv):
    logp, _ = logprobs.score(scorer, batch)
    return -(logp * adv[:, None] * batch.completion_mask).sum() / batch.completion_mask.sum()


def main() -> None:
    distributed.init()
    rank, cpu = distributed.rank(), torch.device("cpu")
    spec, opts = models.BUILTIN, models.Options()
    if len(sys.argv) > 1:  # a model directory, trained with LoRA adapters
        spec, opts = sys.argv[1], models.Options(lora_r=4)
    policy, tok = models.load(spec, 0, cpu, opts)
    torch.manual_seed(3)
    with torch.no_grad():  # LoRA's B starts at zero: give every adapter weight a gradient from the first step
        for n, p in policy.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    single = copy.deepcopy(policy)
    start = {k: v.clone() for k, v in single.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    vocab = len(tok)
    prompt = torch.randint(3, vocab, (N, P), generator=g)
    completion = torch.randint(3, vocab, (N, C), generator=g)
    cmask = torch.ones(N, C, dtype=torch.long)
    cmask[::3, C - 2:] = 0
    batch = rollout.Batch(prompt, torch.ones(N, P, dtype=torch.long), completion, cmask, None)
    adv = torch.randn(N, generator=g)
    halves = [slice(0, N // 2), slice(N // 2, N)]

    def part(sl):
        return rollout.Batch(prompt[sl], batch.prompt_mask[sl], completion[sl], cmask[sl], None), adv[sl]

    root = distributed.shard(logprobs.Scorer(policy, chunk_tokens=7), policy, torch.float32, offload=False)
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = loss_of(root, *part(halves[rank]))
        loss.backward()
        gn = distributed.grad_norm(torch.nn.utils.clip_grad_norm_(policy.parameters(), 0.5))
        opt.step()
        losses.append([float(x) for x in distributed.gather(loss.item())] + [float(gn)])
    full = distributed.full_state_dict(root)
    with distributed.gathered(root), torch.no_grad():
        sharded_greedy = rollout.sample(policy.eval(), prompt.tolist(), max_new_tokens=8, eos_id=tok.eos_token_id,
                                        pad_id=tok.pad_token_id, temperature=0).completion_ids
    if rank == 0:
        s_root = logprobs.Scorer(single, chunk_tokens=7)
        s_opt = torch.optim.AdamW([p for p in single.parameters() if p.requires_grad], lr=1e-2)
        s_losses = []
        for _ in range(STEPS):
            s_opt.zero_grad()
            parts = [loss_of(s_root, *part(sl)) for sl in halves]
            (sum(parts) / 2).backward()
            gn = torch.nn.utils.clip_grad_norm_(single.parameters(), 0.5)
            s_opt.step()
            s_losses.append([p.item() for p in parts] + [gn.item()])
        ref = single.state_dict()
        with torch.no_grad():
            greedy = rollout.sample(single.eval(), prompt.tolist(), max_new_tokens=8, eos_id=tok.eos_token_id,
                                    pad_id=tok.pad_token_id, temperature=0).completion_ids
        moved = max((ref[k] - v).abs().max().item() for k, v in start.items())
        print(json.dumps({
            "losses": losses, "single_losses": s_losses,
            "max_weight_diff": max((full[f"model.{k}"] - v).abs().max().item() for k, v in ref.items()),
            "moved": moved, "keys_match": sorted(k.removeprefix("model.") for k in full) == sorted(ref),
            "greedy_equal": bool(torch.equal(sharded_greedy, greedy)),
            "local_numel": sum(p.to_local().numel() for p in policy.parameters()),
            "numel": sum(p.numel() for p in single.parameters())}))
    sys.stdout.flush()
    distributed.barrier()
    distributed.shutdown()


if __name__ == "__main__":
    main()
