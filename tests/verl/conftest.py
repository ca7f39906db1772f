"""Fixtures of the VERL tests: the tiny suite exported for VERL, the SmolLM2 tokenizer, VERL configs.

The modules that need VERL call ``pytest.importorskip("verl.protocol")`` first, so that in the project's
main environment (no VERL) they are skipped; ``scripts/test-verl.sh`` runs them against real VERL
releases, each in its own virtual environment.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def verl_export(tiny_suite: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``seccrm export verl`` of the session's tiny suite."""
    from seccrm.integrations.verl.export import export_verl

    out = tmp_path_factory.mktemp("verl_data")
    export_verl(tiny_suite, out)
    return out


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    """The SmolLM2 chat tokenizer, converted by this environment's transformers.

    Each transformers major writes a tokenizer folder the other cannot always read (5.x saves a
    ``TokenizersBackend`` class 4.x does not know), so every version gets its own cache folder.
    """
    import transformers

    from seccrm.engine.models import cache_root, ensure_default_tokenizer

    saved = os.environ.get("SECCRM_CACHE")
    os.environ["SECCRM_CACHE"] = str(cache_root() / f"verl-tests-transformers-{transformers.__version__}")
    try:
        return ensure_default_tokenizer()
    finally:
        if saved is None:
            del os.environ["SECCRM_CACHE"]
        else:
            os.environ["SECCRM_CACHE"] = saved


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


@pytest.fixture(scope="session")
def verl_config(tokenizer_dir: Path) -> Callable[..., Any]:
    """``verl_config(*overrides)``: VERL's own ``ppo_trainer`` config, composed by Hydra as VERL's
    entry point does, with the model path pointing at the SmolLM2 tokenizer."""
    import verl.trainer
    from hydra import compose, initialize_config_dir

    config_dir = os.path.join(os.path.dirname(verl.trainer.__file__), "config")

    def make(*overrides: str) -> Any:
        with initialize_config_dir(config_dir=config_dir, version_base=None):
            return compose(config_name="ppo_trainer",
                           overrides=[f"actor_rollout_ref.model.path={tokenizer_dir}", *overrides])

    return make


SAMPLER_OVERRIDES: tuple[str, ...] = (
    "++data.sampler.class_path=pkg://seccrm.integrations.verl.sampler",
    "++data.sampler.class_name=SECSampler",
    "data.dataloader_num_workers=0",
    "data.train_batch_size=8",
    "data.max_prompt_length=100000",
    "++data.filter_overlong_prompts_workers=1",
)
"""The recipe's sampler settings (``++`` adds keys that VERL 0.8+'s config no longer declares)."""


@pytest.fixture(scope="session")
def sampler_config(verl_config: Callable[..., Any]) -> Callable[..., Any]:
    """``sampler_config(*overrides)``: VERL's config with the recipe's sampler settings, then ``overrides``."""
    return lambda *overrides: verl_config(*SAMPLER_OVERRIDES, *overrides)


@pytest.fixture(scope="session")
def train_dataset(verl_export: Path, tokenizer: Any, verl_config: Callable[..., Any],
                  tmp_path_factory: pytest.TempPathFactory) -> Any:
    """VERL's own ``RLHFDataset`` over the exported train split."""
    from verl.utils.dataset.rl_dataset import RLHFDataset

    cache = tmp_path_factory.mktemp("verl_cache")
    config = verl_config(*SAMPLER_OVERRIDES, f"++data.cache_dir={cache}")
    return RLHFDataset(str(verl_export / "train.parquet"), tokenizer, config.data)
