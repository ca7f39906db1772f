"""The TRL hand-off (see the package docstring)."""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from torch.utils.data import Sampler

from seccrm.curriculum import ArmPools, Curriculum, build_curriculum
from seccrm.data import load_split
from seccrm.rl.trainer import derive_seed
from seccrm.world.arms import ALL_ARMS
from seccrm.world.rewards import score_details

STATE_FILE = "seccrm_curriculum.json"


# ------------------------------------------------------------------------------------ rewards
def _text(completion: Any) -> str:
    """TRL passes a conversational completion as ``[{"role": "assistant", "content": ...}]``."""
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    return str(completion)


def _details(completions: list[Any], instance: list[str]) -> list[dict[str, Any]]:
    return [score_details(json.loads(inst), _text(c)) for c, inst in zip(completions, instance, strict=True)]


def correct_reward(prompts: list[Any], completions: list[Any], instance: list[str], **_: Any) -> list[float]:
    """1.0 for a correct answer, else 0.0 (TRL reward function; ``instance`` is the dataset column)."""
    return [1.0 if d["correct"] else 0.0 for d in _details(completions, instance)]


def formatted_reward(prompts: list[Any], completions: list[Any], instance: list[str], **_: Any) -> list[float]:
    """0.1 for a well-formed but wrong answer, else 0.0: with :func:`correct_reward` it sums to
    seccrm's reward."""
    return [float(d["reward"]) if not d["correct"] else 0.0 for d in _details(completions, instance)]


correct_reward.__name__ = "correct"
formatted_reward.__name__ = "formatted"


def reward_functions() -> list[Any]:
    """``[correct, formatted]``: pass as ``reward_funcs``; weights 1 and 1 give seccrm's reward."""
    return [correct_reward, formatted_reward]


# ------------------------------------------------------------------------------------ dataset
def suite_dataset(data: str | Path, split: str = "train") -> Any:
    """A built suite's split as a ``datasets.Dataset``: ``prompt`` (the chat messages), ``id``,
    ``task``, ``arm`` and ``instance`` (the record as JSON, read by the reward functions)."""
    from datasets import Dataset

    rows = load_split(data, split)
    return Dataset.from_list([{"prompt": r["messages"], "id": r["id"], "task": r["task"], "arm": r["arm"],
                               "instance": json.dumps(r, sort_keys=True)} for r in rows])


# ------------------------------------------------------------------------------------ sampler
class CurriculumSampler(Sampler[int]):
    """Indices for TRL's generation batches, each prompt slot drawn by the curriculum.

    Mirrors TRL's ``RepeatSampler``: a chunk of ``batch_size`` prompts is drawn, then yielded
    ``repeat_count`` times, each index ``mini_repeat_count`` times in a row. Chunks are drawn lazily
    (when the loader asks), and those drawn but not yet used by the trainer are kept (``pending``)
    so that a checkpoint can hold them.
    """

    def __init__(self, dataset: Any, curriculum: Curriculum, pools: ArmPools, batch_size: int,
                 mini_repeat_count: int, repeat_count: int = 1):
        self.dataset, self.curriculum, self.pools = dataset, curriculum, pools
        self.batch_size, self.mini_repeat_count, self.repeat_count = batch_size, mini_repeat_count, repeat_count
        self.row_of = {rid: i for i, rid in enumerate(dataset["id"])}
        self.pending: deque[list[int]] = deque()     # drawn chunks the trainer has not consumed
        self.replay: deque[list[int]] = deque()      # restored pending chunks, yielded before new draws
        self.chunks_per_epoch = max(len(self.row_of) // batch_size, 1)

    def draw_chunk(self) -> list[int]:
        arms = self.curriculum.sample(self.batch_size)
        return [self.row_of[self.pools.draw(a)] for a in arms]

    def __iter__(self) -> Iterator[int]:
        for _ in range(self.chunks_per_epoch):
            chunk = self.replay.popleft() if self.replay else self.draw_chunk()
            self.pending.append(chunk)
            for _ in range(self.repeat_count):
                for index in chunk:
                    yield from [index] * self.mini_repeat_count

    def __len__(self) -> int:
        return self.chunks_per_epoch * self.batch_size * self.mini_repeat_count * self.repeat_count

    def consumed(self) -> list[int]:
        """The trainer used the oldest pending chunk; returns it."""
        return self.pending.popleft()

    def state_dict(self) -> dict[str, Any]:
        return {"curriculum": self.curriculum.state_dict(), "pools": self.pools.state_dict(),
                "pending": [list(c) for c in self.pending]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.curriculum.load_state_dict(state["curriculum"])
        self.pools.load_state_dict(state["pools"])
        self.pending.clear()
        self.replay = deque(list(c) for c in state.get("pending", []))


def _pools(dataset: Any, seed: int) -> tuple[ArmPools, tuple[str, ...]]:
    by_arm: dict[str, list[str]] = {}
    for rid, arm in zip(dataset["id"], dataset["arm"], strict=True):
        by_arm.setdefault(arm, []).append(rid)
    arms = tuple(a for a in ALL_ARMS if a in by_arm) + tuple(sorted(a for a in by_arm if a not in ALL_ARMS))
    return ArmPools(by_arm, seed=derive_seed(seed, "pools")), arms


# ------------------------------------------------------------------------------------ trainer
def _grpo_trainer_class() -> type:
    from trl import GRPOTrainer
    return GRPOTrainer  # type: ignore[no-any-return]


class SECGRPOTrainer(_grpo_trainer_class()):  # type: ignore[misc]
    """``trl.GRPOTrainer`` with a seccrm curriculum choosing the prompts (see the package docstring).

    Extra arguments: ``curriculum`` (a name of ``seccrm.curriculum.build_curriculum``, default
    ``"sec"``) and ``curriculum_options`` (e.g. ``{"alpha": 0.3, "tau": 0.5}``). The seed is
    ``args.seed``. The training dataset needs the ``id``, ``arm`` and ``instance`` columns of
    :func:`suite_dataset`.
    """

    def __init__(self, *args: Any, curriculum: str = "sec", curriculum_options: dict[str, Any] | None = None,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.args.ignore_data_skip = True   # the sampler's saved state replaces TRL's batch skipping
        self._rng_from: str | None = None
        pools, arms = _pools(self.train_dataset, self.args.seed)
        self.curriculum = build_curriculum(curriculum, arms, derive_seed(self.args.seed, "curriculum"),
                                           curriculum_options or {})
        self.curriculum_sampler = CurriculumSampler(
            self.train_dataset, self.curriculum, pools,
            batch_size=self.args.generation_batch_size // self.num_generations,
            mini_repeat_count=self.num_generations,
            repeat_count=self.num_iterations * self.args.steps_per_generation)

    def _get_train_sampler(self, dataset: Any = None) -> Sampler[int]:
        return self.curriculum_sampler

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        if self.model.training and self._rng_from is not None:
            # With ignore_data_skip the Trainer does not restore the RNG states of a resumed run; they
            # are restored here, right before the first generation, where the run left them.
            self._load_rng_state(self._rng_from)
            self._rng_from = None
        output = super()._generate_and_score_completions(inputs)
        if self.model.training:
            from accelerate.utils import gather_object

            self.curriculum_sampler.consumed()
            arms = gather_object([x["arm"] for x in inputs])
            advantages = self.accelerator.gather(output["advantages"].detach()).float().cpu()
            self.curriculum.update(arms, advantages.tolist())
            for name, value in self.curriculum.metrics().items():
                self._metrics["train"][name].append(float(value))
        return output

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

            folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            tmp = folder / f".{STATE_FILE}.tmp-{os.getpid()}"
            tmp.write_text(json.dumps(self.curriculum_sampler.state_dict()))
            os.replace(tmp, folder / STATE_FILE)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is not None:
            path = Path(checkpoint) / STATE_FILE
            if not path.is_file():
                raise FileNotFoundError(f"{checkpoint} has no {STATE_FILE}: it was not written by SECGRPOTrainer, "
                                        "so the curriculum cannot continue from it")
            self.curriculum_sampler.load_state_dict(json.loads(path.read_text()))
            self._rng_from = checkpoint


