"""What an experiment (the demo among them) will cost on this machine, said before it starts, and how much of it is left.

CPUs differ several-fold on the same demo (bf16 matrix units or none, AVX-512 or AVX2), so a fixed
figure in the README cannot tell a user what to expect. :func:`calibrate` times the three units every
stage is made of on the machine at hand, with the experiment's own model and prompts (about half a minute):

- a greedy answer (prefill and decoding to the token limit: the base model's worst case),
- a sampled completion (one of a group, as rollouts and the sampled probe draw them),
- a training token (forward and backward of a prompt with its target, as the warm-up and GRPO train).

:func:`estimate` turns an experiment's settings into seconds per stage from those units, and
:class:`RunClock` prints one line per stage with the whole job's elapsed and remaining time,
rescaling what is left by how far the finished stages were from their estimates.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from seccrm.engine.models import peak_memory_gb
from seccrm.engine.rollout import encode_prompts
from seccrm.evaluation.evaluate import evaluate_instances, sample_probe
from seccrm.rl.warmup import answer_nll


@dataclass(frozen=True)
class Units:
    """Seconds per unit of work, measured on this machine."""

    greedy_s: float          # one greedy answer decoded to the token limit
    sample_s: float          # one sampled completion, drawn with its group
    train_token_s: float     # one token of forward and backward
    prompt_tokens: float     # the median prompt length the units were measured at
    seconds: float           # what the calibration itself took


def calibrate(model: Any, tokenizer: Any, instances: list[dict[str, Any]], max_new_tokens: int,
              group_size: int, n_greedy: int = 4) -> Units:
    """Time the three units on ``instances`` (validation instances of typical length)."""
    t0 = time.perf_counter()
    lengths = [len(p) for p in encode_prompts(tokenizer, [i["messages"] for i in instances])]
    # Warm the allocator and kernels once so that the first measurement is not an outlier.
    evaluate_instances(model, tokenizer, instances[:1], max_new_tokens=4, progress=False)
    res = evaluate_instances(model, tokenizer, instances[:n_greedy], max_new_tokens=max_new_tokens,
                             progress=False)
    greedy = res["seconds"] / len(res["rows"])
    t1 = time.perf_counter()
    sample_probe(model, tokenizer, instances[:1], k=group_size, max_new_tokens=max_new_tokens, progress=False)
    sample = (time.perf_counter() - t1) / group_size
    prompt = encode_prompts(tokenizer, [instances[0]["messages"]])[0]
    target = prompt[-max_new_tokens:] * max(1, group_size // 2)
    was_training = model.training
    model.train()
    t2 = time.perf_counter()
    nll, _ = answer_nll(model, prompt, target)
    nll.backward()
    train_token = (time.perf_counter() - t2) / (len(prompt) + len(target))
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return Units(greedy, sample, train_token, float(statistics.median(lengths[:n_greedy] or [0])),
                 time.perf_counter() - t0)


def estimate(units: Units, plan: dict[str, Any], n_val: int, n_test: int, runs: list[str]) -> dict[str, float]:
    """Seconds per stage of a single-turn experiment ``plan`` (``seccrm.experiments.compare``), keyed as
    its ``timings.json``: the start models' evaluations, the warm-up, and each of ``runs`` trained
    (``train/<run>``) and evaluated (``eval/<run>``).

    The base model decodes to the limit; later stages mostly stop at their answer, so their greedy
    cost is taken as half the base's. A GRPO step draws ``prompts_per_step`` groups (twice as many
    when groups without signal are redrawn) and trains on each prompt with its group's completions.
    """
    train = plan["train"]
    g, s, tok = units.greedy_s, units.sample_s, units.train_token_s
    prompt = units.prompt_tokens
    stopped = 0.5 * g
    probe = plan.get("probe_k", 0) * min(plan.get("probe_n", 0) or n_val, n_val) * s
    evaluation = (n_val + n_test) * stopped + probe
    warm = plan["warmup_steps"] if isinstance(plan["warmup_steps"], int) else plan["warmup_default_steps"]
    checks = (warm // max(1, plan["warmup_check_every"]) + 1) * plan["warmup_probe"] * stopped \
        if plan.get("warmup_check_every") else 0.0
    groups = train["prompts_per_step"] * (2 if train.get("dynamic_sampling") else 1)
    group = train["group_size"]
    step = groups * group * s + train["prompts_per_step"] * (prompt + group * train["max_new_tokens"]) * tok
    base_n = min(plan.get("eval_base", 0) or n_val, n_val) + min(plan.get("eval_base", 0) or n_test, n_test)
    out = {"eval_base_s": base_n * g}
    if warm:
        out.update(warmup_s=warm * plan["warmup_batch"] * (prompt + 20) * tok + checks, eval_warmup_s=evaluation)
    for run in runs:
        out.update({f"train/{run}": plan["steps"] * step, f"eval/{run}": evaluation})
    return out


class RunClock:
    """One line per finished stage: the whole run's elapsed and estimated remaining time."""

    def __init__(self, estimates: dict[str, float], machine: str, done: dict[str, float] | None = None,
                 prefix: str = "[seccrm experiment]"):
        self.estimates = estimates
        self.machine = machine
        self.prefix = prefix
        self.actual: dict[str, float] = dict(done or {})
        self.t0 = time.perf_counter() - sum(self.actual.values())

    def total(self) -> float:
        return sum(self.estimates.values())

    def remaining(self) -> float:
        """Estimated seconds left: the unfinished stages' estimates, scaled by actual / estimated so far."""
        done = [k for k in self.estimates if k in self.actual]
        est_done = sum(self.estimates[k] for k in done)
        scale = sum(self.actual[k] for k in done) / est_done if est_done > 0 else 1.0
        return scale * sum(v for k, v in self.estimates.items() if k not in self.actual)

    def finished(self, stage: str, seconds: float) -> str:
        self.actual[stage] = seconds
        elapsed = time.perf_counter() - self.t0
        left = self.remaining()
        share = elapsed / (elapsed + left) if elapsed + left > 0 else 1.0
        line = (f"{self.prefix} whole run: {100 * share:3.0f}% · {elapsed / 60:.1f} min so far · "
                f"~{left / 60:.1f} min left (estimated on {self.machine}) · peak memory so far {peak_memory_gb():.1f} GB")
        print(line, file=sys.stderr, flush=True)
        return line

    def announce(self, units: Units) -> str:
        parts = ", ".join(f"{k.removesuffix('_s')} {v / 60:.1f}" for k, v in self.estimates.items())
        line = (f"{self.prefix} calibration ({units.seconds:.0f} s): greedy answer {units.greedy_s:.2f} s, sampled "
                f"completion {units.sample_s:.2f} s, training token {1000 * units.train_token_s:.2f} ms at "
                f"{units.prompt_tokens:.0f} prompt tokens -> estimated total {self.total() / 60:.0f} min on "
                f"{self.machine} ({parts} min)")
        print(line, file=sys.stderr, flush=True)
        return line




def units_from_json(d: dict[str, Any]) -> Units:
    return Units(**{k: float(d[k]) for k in asdict(Units(0, 0, 0, 0, 0))})
