import torch

from grpo import logprobs, models, rollout


def test_builtin_model_saves_and_loads_like_any_checkpoint(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = models.load(models.BUILTIN, 0, torch.device("cpu"))
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    tok2 = AutoTokenizer.from_pretrained(tmp_path)
    text = "(3+1)*3\n3+1=4\n#### 12"
    ids = tok2(text, add_special_tokens=False)["input_ids"]
    assert ids == tok(text, add_special_tokens=False)["input_ids"] and len(ids) == len(text)  # one token a char
    assert tok2.decode(ids) == text
    model2 = AutoModelForCausalLM.from_pretrained(tmp_path)
    x = torch.tensor([ids])
    assert torch.allclose(model(x).logits, model2(x).logits)


def test_vocabulary_check_names_the_bad_characters():
    _, tok = models.load(models.BUILTIN, 0, torch.device("cpu"))
    models.check_vocabulary(tok, "3+4*2")
    try:
        models.check_vocabulary(tok, "3+4×2€")
    except ValueError as e:
        assert "×" in str(e) and "€" in str(e)
    else:
        raise AssertionError("expected ValueError")


def test_kv_cache_sampling_equals_full_recompute():
    model, tok = models.load(models.BUILTIN, 0, torch.device("cpu"))
    prompts = [tok("1+2*3\n")["input_ids"], tok("(9-8)*7+1\n")["input_ids"]]
    outs = []
    for use_cache in (True, False):
        gen = torch.Generator().manual_seed(3)
        outs.append(rollout.sample(model, prompts, max_new_tokens=12, eos_id=tok.eos_token_id,
                                   pad_id=tok.pad_token_id, generator=gen, use_cache=use_cache))
    assert torch.equal(outs[0].completion_ids, outs[1].completion_ids)


def test_sampled_tokens_score_consistently_with_teacher_forcing():
    """Log-probs from one teacher-forced pass over [left-padded prompt | completion] equal those of each
    sequence scored alone, so padding never leaks into the loss."""
    model, tok = models.load(models.BUILTIN, 0, torch.device("cpu"))
    prompts = [tok("1+2\n")["input_ids"], tok("(9-8)*7+1\n")["input_ids"]]
    batch = rollout.sample(model, prompts, max_new_tokens=8, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id,
                           generator=torch.Generator().manual_seed(0))
    logp, _ = logprobs.token_logprobs(model, batch)
    for i, p in enumerate(prompts):
        n = int(batch.lengths[i])
        single = rollout.Batch(torch.tensor([p]), torch.ones(1, len(p), dtype=torch.long),
                               batch.completion_ids[i:i + 1, :n], torch.ones(1, n, dtype=torch.long),
                               batch.truncated[i:i + 1])
        alone, _ = logprobs.token_logprobs(model, single)
        assert torch.allclose(alone[0], logp[i, :n], atol=1e-5)


def test_finished_rows_leave_the_decode_batch_without_changing_any_completion():
    """Compacting the decode batch (finished rows and their KV-cache rows dropped) is exact: greedy
    completions equal those of a batch that decodes every row to the end, with and without the cache."""
    model, tok = models.load(models.BUILTIN, 0, torch.device("cpu"))
    torch.manual_seed(0)
    with torch.no_grad():  # large random weights: completions that differ from prompt to prompt
        for p in model.parameters():
            p.normal_(0, 0.3)
    prompts = [tok(q)["input_ids"] for q in ("1+2\n", "(9-8)*7+1\n", "3*3\n", "12-4+2\n", "7\n", "8*(1+2)\n",
                                             "99\n", "(1)\n")]
    full = rollout.sample(model, prompts, max_new_tokens=24, eos_id=-1, pad_id=tok.pad_token_id, temperature=0)
    eos = int(full.completion_ids.flatten().mode().values)  # an "EOS" that rows reach at different steps
    finish = {int((row == eos).nonzero()[0]) if (row == eos).any() else None for row in full.completion_ids}
    assert len(finish) >= 3
    ref = rollout.sample(model, prompts, max_new_tokens=24, eos_id=eos, pad_id=tok.pad_token_id, temperature=0,
                         compact_at=2.0)  # never compacts
    for use_cache in (True, False):
        got = rollout.sample(model, prompts, max_new_tokens=24, eos_id=eos, pad_id=tok.pad_token_id,
                             temperature=0, use_cache=use_cache, compact_at=0.01)  # compacts at every finish
        assert torch.equal(got.completion_ids, ref.completion_ids)
        assert torch.equal(got.completion_mask, ref.completion_mask) and torch.equal(got.truncated, ref.truncated)
