"""VERL's own dataset class and reward manager on the exported data, with the SmolLM2 chat tokenizer."""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

# "verl.protocol", not "verl": pytest puts tests/ on sys.path, where tests/verl passes for a package
verl = pytest.importorskip("verl.protocol")

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.experimental.reward_loop.reward_loop import RewardLoopWorker  # noqa: E402
from verl.utils.dataset.rl_dataset import RLHFDataset  # noqa: E402

import seccrm.integrations.verl.reward as reward_module  # noqa: E402
from seccrm.integrations.verl.export import SPLIT_FILES  # noqa: E402
from seccrm.integrations.verl.sampler import SECSampler, dataset_rows  # noqa: E402
from seccrm.world.rewards import gold_completion, score  # noqa: E402


def _prompt_len(tokenizer: Any, messages: list[dict]) -> int:
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return len(ids["input_ids"] if hasattr(ids, "keys") else ids)


def test_rlhf_dataset_loads_every_split(verl_export: Path, tokenizer: Any, sampler_config: Callable[..., Any],
                                        tmp_path: Path) -> None:
    config = sampler_config(f"++data.cache_dir={tmp_path}").data
    for name in SPLIT_FILES.values():
        rows = pq.read_table(verl_export / name).to_pylist()
        ds = RLHFDataset(str(verl_export / name), tokenizer, config)
        assert len(ds) == len(rows)
        for i in (0, len(ds) - 1):
            item = ds[i]
            assert item["raw_prompt"] == rows[i]["prompt"]  # the chat messages VERL's rollout templates
            assert item["index"] == i and item["data_source"] == rows[i]["data_source"]
            assert item["extra_info"]["arm"] == rows[i]["extra_info"]["arm"]
            text = tokenizer.apply_chat_template(item["raw_prompt"], add_generation_prompt=True, tokenize=False)
            assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")


def test_overlong_filter_keeps_ids_and_arms_aligned(verl_export: Path, tokenizer: Any,
                                                    sampler_config: Callable[..., Any], tmp_path: Path) -> None:
    rows = pq.read_table(verl_export / "train.parquet").to_pylist()
    lengths = [_prompt_len(tokenizer, r["prompt"]) for r in rows]
    limit = sorted(lengths)[len(lengths) // 2]  # VERL drops about half the prompts
    config = sampler_config(f"++data.cache_dir={tmp_path}", f"data.max_prompt_length={limit}",
                            "data.filter_overlong_prompts=true").data
    ds = RLHFDataset(str(verl_export / "train.parquet"), tokenizer, config)
    kept = [r for r, n in zip(rows, lengths, strict=True) if n <= limit]
    assert 0 < len(ds) == len(kept) < len(rows)
    arms, ids = dataset_rows(ds)  # read through the filtered dataset's index mapping
    assert ids == [r["extra_info"]["instance_id"] for r in kept]
    assert arms == [r["extra_info"]["arm"] for r in kept]
    sampler = SECSampler(ds, config)
    drawn = {ds[i]["extra_info"]["instance_id"] for i in islice(iter(sampler), 3 * len(ds))}
    assert drawn <= set(ids)


def _decoded_batch(tokenizer: Any, rows: list[dict], completions: list[str]) -> DataProto:
    """A rollout batch as VERL's agent loop leaves it: left-padded prompts, right-padded responses."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    prompts = [tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=False) for r in rows]
    p_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    r_ids = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in completions]
    p_len, r_len = max(map(len, p_ids)), max(max(map(len, r_ids)), 1)
    prompt_t = torch.full((len(rows), p_len), pad)
    resp_t = torch.full((len(rows), r_len), pad)
    mask = torch.zeros(len(rows), p_len + r_len, dtype=torch.long)
    for i, (p, r) in enumerate(zip(p_ids, r_ids, strict=True)):
        prompt_t[i, p_len - len(p):] = torch.tensor(p)
        mask[i, p_len - len(p):p_len] = 1
        if r:
            resp_t[i, :len(r)] = torch.tensor(r)
            mask[i, p_len:p_len + len(r)] = 1
    return DataProto.from_dict(
        tensors={"prompts": prompt_t, "responses": resp_t, "attention_mask": mask,
                 "input_ids": torch.cat([prompt_t, resp_t], dim=1)},
        non_tensors={"data_source": np.array([r["data_source"] for r in rows], dtype=object),
                     "reward_model": np.array([r["reward_model"] for r in rows], dtype=object),
                     "extra_info": np.array([dict(r["extra_info"]) for r in rows], dtype=object)})


def test_verl_reward_manager_returns_project_rewards(verl_export: Path, tiny_suite: Path, tokenizer: Any,
                                                     verl_config: Callable[..., Any]) -> None:
    from seccrm.data import load_split

    train = pq.read_table(verl_export / "train.parquet").to_pylist()
    test = pq.read_table(verl_export / "test.parquet").to_pylist()
    records = {r["id"]: r for split in ("train", "test") for r in load_split(tiny_suite, split)}
    rows, completions = [], []
    for skill in ("CRUD", "ANALYTICS", "KNOWLEDGE", "POLICY"):
        row = next(r for r in train if r["extra_info"]["skill"] == skill)
        rec = records[row["extra_info"]["instance_id"]]
        for c in (gold_completion(rec), "<answer>None</answer>", "I am not sure.", ""):
            rows.append(row)
            completions.append(c)
    rows.append(test[0])
    completions.append("Checked the quote. " + gold_completion(records[test[0]["extra_info"]["instance_id"]]))

    config = verl_config(f"reward.custom_reward_function.path={reward_module.__file__}",
                         "reward.custom_reward_function.name=compute_score")
    from verl.trainer import main_ppo
    if hasattr(main_ppo, "migrate_legacy_reward_impl"):  # what VERL 0.7's main does first
        config = main_ppo.migrate_legacy_reward_impl(config)
    worker = RewardLoopWorker(config)  # the worker VERL runs as a Ray actor, here in-process
    loop = worker.reward_manager.loop  # the manager bound itself to this event loop when it was built
    outputs = loop.run_until_complete(worker.compute_score_batch(_decoded_batch(tokenizer, rows, completions)))

    expected = [score(records[r["extra_info"]["instance_id"]], c) for r, c in zip(rows, completions, strict=True)]
    got = [o["reward_score"] for o in outputs]
    assert got == expected
    assert set(expected) == {1.0, 0.1, 0.0}
    infos = [o["reward_extra_info"] for o in outputs]
    assert all(set(i) >= {"score", "acc", "formatted", "f1", "error", "task", "arm"} for i in infos)
    assert [i["acc"] for i in infos] == [1.0 if e == 1.0 else 0.0 for e in expected]
    assert json.loads(rows[0]["reward_model"]["ground_truth"]) == records[rows[0]["extra_info"]["instance_id"]]["answer"]


def test_org_path_from_verl_config_and_other_data_sources(verl_export: Path, tiny_suite: Path, tokenizer: Any,
                                                          verl_config: Callable[..., Any], tmp_path: Path) -> None:
    """``reward_kwargs.org_path`` in VERL's config reaches the reward (rows exported elsewhere), and rows
    of other data sources get VERL's default scorer."""
    import shutil

    from seccrm.data import load_split

    crud = next(r for r in pq.read_table(verl_export / "train.parquet").to_pylist()
                if r["extra_info"]["skill"] == "CRUD")
    crud["extra_info"]["org_path"] = str(tmp_path / "not-here.sqlite")
    shutil.copyfile(verl_export / "org.sqlite", tmp_path / "org.sqlite")
    rec = {r["id"]: r for r in load_split(tiny_suite, "train")}[crud["extra_info"]["instance_id"]]
    config = verl_config(f"reward.custom_reward_function.path={reward_module.__file__}",
                         "reward.custom_reward_function.name=compute_score",
                         f"++reward.custom_reward_function.reward_kwargs.org_path={tmp_path / 'org.sqlite'}")
    from verl.trainer import main_ppo
    if hasattr(main_ppo, "migrate_legacy_reward_impl"):
        config = main_ppo.migrate_legacy_reward_impl(config)
    worker = RewardLoopWorker(config)
    batch = _decoded_batch(tokenizer, [crud, crud], [gold_completion(rec), "<answer>{}</answer>"])
    outputs = worker.reward_manager.loop.run_until_complete(worker.compute_score_batch(batch))
    assert [o["reward_score"] for o in outputs] == [1.0, 0.0]

    gsm8k = reward_module.compute_score("openai/gsm8k", "so the answer is #### 42", "42", {})
    assert gsm8k == 1.0
