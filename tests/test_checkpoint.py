import errno
import json

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from seccrm.rl.checkpoint import (
    CheckpointError,
    complete_checkpoints,
    latest_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)


def _model():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1)
    return LlamaForCausalLM(cfg)


def test_save_is_atomic_pruned_and_loadable(tmp_path):
    from transformers import AutoModelForCausalLM
    m = _model()
    opt = torch.optim.AdamW(m.parameters())
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, m, None, opt, {"x": step}, keep=2)
    done = complete_checkpoints(tmp_path)
    assert [p.name for p in done] == ["step_000002", "step_000003"]
    assert verify_checkpoint(done[-1])["x"] == 3
    loaded = AutoModelForCausalLM.from_pretrained(done[-1])
    assert torch.equal(loaded.model.embed_tokens.weight, m.model.embed_tokens.weight)


def test_half_written_checkpoint_is_ignored_and_corrupt_one_is_named(tmp_path):
    m = _model()
    save_checkpoint(tmp_path, 1, m, None, None, {})
    (tmp_path / "checkpoints" / ".tmp-step_000002-99").mkdir()   # a save killed midway
    (tmp_path / "checkpoints" / "step_000003").mkdir()           # no manifest: never finished
    assert latest_checkpoint(tmp_path).name == "step_000001"
    ck = save_checkpoint(tmp_path, 4, m, None, None, {})
    weights = next(ck.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])              # truncated on disk
    with pytest.raises(CheckpointError, match="corrupt.*step_000001"):
        verify_checkpoint(ck)


def test_full_disk_keeps_previous_checkpoint(tmp_path, monkeypatch):
    m = _model()
    save_checkpoint(tmp_path, 1, m, None, None, {"ok": True})

    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(json, "dumps", no_space)
    with pytest.raises(CheckpointError, match="No space left.*step_000001 is intact"):
        save_checkpoint(tmp_path, 2, m, None, None, {})
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path).name == "step_000001"
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))
