import pytest


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    """Random-weight Qwen2 and Llama checkpoints with a byte-level BPE tokenizer and a chat template,
    written at test time (nothing downloaded, nothing committed)."""
    from grpo import tiny_hf

    root = tmp_path_factory.mktemp("tiny_hf")
    return {arch: str(tiny_hf.write_checkpoint(root / arch, arch)) for arch in ("qwen2", "llama")}
