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
    with pytest.raises(CheckpointError, match="disk is full.*step_000001 is intact.*needs about"):
        save_checkpoint(tmp_path, 2, m, None, None, {})
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path).name == "step_000001"
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))


def test_same_size_random_bytes_are_caught_by_the_hash_and_eval_refuses_them(tmp_path, tiny_suite, capsys):
    import os

    from seccrm.cli import main
    m = _model()
    ck = save_checkpoint(tmp_path, 1, m, None, None, {})
    weights = ck / "model.safetensors"
    size = weights.stat().st_size
    head = weights.read_bytes()[:200]                       # keep the header: the file still parses
    weights.write_bytes(head + os.urandom(size - len(head)))
    assert verify_checkpoint(ck, hashes=False) == {"step": 1}   # sizes alone cannot see it
    with pytest.raises(CheckpointError, match="model.safetensors .its bytes changed: sha256 differs"):
        verify_checkpoint(ck)
    out = tmp_path / "e.json"
    assert main(["eval", "--data", str(tiny_suite), "--model", str(ck), "--out", str(out), "--limit", "1"]) == 2
    assert "sha256 differs" in capsys.readouterr().err and not out.exists()


def test_eval_of_a_truncated_model_file_is_a_clear_error(tmp_path, tiny_suite, capsys):
    from seccrm.cli import main
    m = _model()
    from seccrm.engine.models import load_tokenizer
    m.save_pretrained(tmp_path / "plain")                  # a plain HF folder: no manifest to check
    load_tokenizer("tiny").save_pretrained(tmp_path / "plain")
    w = tmp_path / "plain" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:50])
    assert main(["eval", "--data", str(tiny_suite), "--model", str(tmp_path / "plain"),
                 "--out", str(tmp_path / "e.json"), "--limit", "1"]) == 2
    assert "cannot load the model in" in capsys.readouterr().err


def test_a_full_disk_inside_torch_or_safetensors_is_caught_and_cleaned_up(tmp_path, monkeypatch):
    m = _model()
    save_checkpoint(tmp_path, 1, m, None, None, {})
    import seccrm.rl.checkpoint as ck_mod

    def half_then_full(model, tok, dest):
        (dest / "model.safetensors").write_bytes(b"x" * 1000)           # a partial file on disk
        raise RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed "
                           "writing file data/0: file write failed")
    monkeypatch.setattr(ck_mod, "_save_model", half_then_full)
    with pytest.raises(CheckpointError, match="disk is full.*partial checkpoint was removed"):
        save_checkpoint(tmp_path, 2, m, None, None, {})
    assert latest_checkpoint(tmp_path).name == "step_000001"
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))

    def bug(model, tok, dest):
        raise RuntimeError("a real bug, not a disk problem")
    monkeypatch.setattr(ck_mod, "_save_model", bug)
    with pytest.raises(RuntimeError, match="a real bug"):            # not disguised as a disk error
        save_checkpoint(tmp_path, 3, m, None, None, {})
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))


def test_a_really_full_filesystem(tmp_path):
    import subprocess
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root and mount rights)")
    try:
        m = LlamaForCausalLM(LlamaConfig(vocab_size=2048, hidden_size=64, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1))   # ~0.5 MB of weights
        with pytest.raises(CheckpointError, match="disk is full"):
            save_checkpoint(mnt, 1, m, None, torch.optim.AdamW(m.parameters()), {})
        assert not list((mnt / "checkpoints").glob(".tmp-*"))
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
