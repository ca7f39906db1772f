"""Supervised format warm-up: a short stage before RL for models that do not yet write the answer format.

Why: a model that never writes ``<answer>...</answer>`` earns 0.0 on every completion, every GRPO group
has zero advantage and nothing is learned (SmolLM2-135M-Instruct wrote the block in 1 of 64 samples
even with a worked example). A few dozen steps of supervised training on *training* instances, with
the target ``<answer>GOLD</answer>`` and nothing else, make the format reachable. The warm-up never
sees validation or held-out test tasks; it is its own stage with its own row in every table (base,
after warm-up, after RL), and every curriculum starts from the same warm-up checkpoint.

It must teach the format, not an answer. Supervised steps on gold answers drift toward whatever
answer is most common, so: batches go round-robin over the training tasks (every answer type, CRUD's
JSON actions included, in equal shares); the prompt's keys and values are computed without
gradient (``answer_nll``: the backward pass covers the answer's tokens only, a fraction of the
cost); and every ``check_every`` steps a probe of training
instances is answered greedily; the warm-up stops as soon as the probe's format rate reaches
``target_format``, or when its answers lose their diversity (distinct answers / answers below
``min_distinct``: the model has started to repeat one answer). Each check is logged
(``warmup/format_rate``, ``warmup/distinct``, ``warmup/accuracy``), so the report can say what the
warm-up changed.

On an agentic suite (``seccrm build --mode agentic``) the target is a whole episode instead: the
scripted analyst's queries, the sandbox's results and its answer (``seccrm.world.oracle``), with the
loss on the analyst's turns only and the results as context (``episode_demonstrations``). The probe
then plays greedy episodes and also logs how many of them query the org (``warmup/queried``).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from seccrm.data import load_split, suite_mode
from seccrm.engine import precision
from seccrm.engine.models import load_model_and_tokenizer, release_memory
from seccrm.engine.rollout import _CACHE_KW, encode_prompts, generate_rollouts
from seccrm.files import write_folder_atomic
from seccrm.world.rewards import extract_answer, score_details


def warmup_target(instance: dict[str, Any]) -> str:
    """The completion the warm-up teaches: the gold answer inside one answer block."""
    return f"<answer>{', '.join(instance['answer'])}</answer>"


def answer_nll(model: Any, prompt: list[int], target: list[int],
               mask: list[int] | None = None) -> tuple[torch.Tensor, int]:
    """Summed negative log-likelihood of ``target`` after ``prompt``, the prompt's cache without gradient.

    The prompt (all but its last token) runs once under ``no_grad`` into a KV cache; the last prompt
    token and the target run with gradients on top of it. Every target token is predicted by a
    position with gradients, but no gradient flows back into the prompt's keys and values: a cheap
    approximation (the backward pass covers a dozen tokens instead of a thousand) that suffices to
    teach an answer format. With ``mask``, only the target tokens where it is 1 count (an episode's
    model turns; the environment's tokens are context). Returns ``(nll, number of tokens counted)``.
    """
    device = next(model.parameters()).device
    with torch.no_grad():
        # only the cache is wanted: logits for one position, not the prompt's [T, V] (200 MB at 1,000 tokens)
        out = model(input_ids=torch.tensor([prompt[:-1]], device=device), use_cache=True, logits_to_keep=1)
    cache = getattr(out, _CACHE_KW)
    inp = torch.tensor([[prompt[-1]] + target[:-1]], device=device)
    logits = model(input_ids=inp, **{_CACHE_KW: cache}, use_cache=False).logits[0].float()   # [T, V]
    logp = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(target, device=device)[:, None])[:, 0]
    if mask is None:
        return -logp.sum(), len(target)
    keep = torch.tensor(mask, device=device, dtype=logp.dtype)
    return -(logp * keep).sum(), int(sum(mask))


def episode_demonstrations(tokenizer: Any, instances: list[dict[str, Any]], org: str | Path,
                           max_tokens: int = 0) -> dict[int, tuple[list[int], list[int], list[int]]]:
    """The scripted analyst's episode of each instance as ``index -> (prompt ids, continuation ids,
    mask)``: the mask is 1 on the analyst's turns and 0 on the sandbox's results. Episodes the analyst
    does not solve, and (with ``max_tokens``) longer ones, are left out."""
    from seccrm.engine.episodes import conversation_tokens
    from seccrm.world.oracle import oracles, play_oracle

    known = oracles()
    prompts = encode_prompts(tokenizer, [inst["messages"] for inst in instances])
    out = {}
    for i, inst in enumerate(instances):
        if inst["task"] not in known:
            continue
        ep = play_oracle(inst, org)
        if not ep.score()["correct"]:
            continue
        ids, mask = conversation_tokens(tokenizer, ep.messages, len(inst["messages"]))
        n = len(prompts[i])
        if ids[:n] != prompts[i] or any(mask[:n]):
            raise ValueError("the chat template does not render an episode as its prompt followed by its turns")
        if max_tokens and len(ids) > max_tokens:
            continue
        out[i] = (ids[:n], ids[n:], mask[n:])
    return out


def balanced_order(instances: list[dict[str, Any]], keep: list[int], rng: random.Random) -> list[int]:
    """``keep`` (indices into ``instances``) round-robin over tasks, each task's instances shuffled."""
    by_task: dict[str, list[int]] = {}
    for i in keep:
        by_task.setdefault(instances[i]["task"], []).append(i)
    queues = [rng.sample(v, len(v)) for _, v in sorted(by_task.items())]
    rng.shuffle(queues)
    out: list[int] = []
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop())
    return out


def probe_answers(model: Any, tokenizer: Any, instances: list[dict[str, Any]], max_new_tokens: int = 32
                  ) -> dict[str, float]:
    """Greedy answers on ``instances``: format rate, accuracy and distinct answers / answers given."""

    prompts = encode_prompts(tokenizer, [i["messages"] for i in instances])
    with torch.no_grad():
        # four prompts per call: 16 prompts of 1,000 tokens prefilled at once held 4 GB more (docs/results.md)
        ro = generate_rollouts(model, tokenizer, prompts, n=1, max_new_tokens=max_new_tokens, greedy=True,
                               groups_per_call=4)
    details = [score_details(inst, text) for inst, text in zip(instances, ro.texts, strict=True)]
    answers = [a.strip() for a in (extract_answer(t)[0] for t in ro.texts) if a is not None and a.strip()]
    return {"warmup/format_rate": sum(d["reward"] >= 0.1 for d in details) / len(details),
            "warmup/accuracy": sum(d["reward"] >= 1.0 for d in details) / len(details),
            "warmup/answered": len(answers) / len(details),
            "warmup/distinct": len(set(answers)) / len(answers) if answers else 0.0,
            "warmup/none_share": sum(a.lower() == "none" for a in answers) / len(details)}


def probe_episodes(model: Any, tokenizer: Any, instances: list[dict[str, Any]], org: str | Path
                   ) -> dict[str, float]:
    """`probe_answers` for an agentic suite: greedy episodes, plus the share that query the org."""
    from seccrm.engine.episodes import play_episode
    from seccrm.world.episode import EpisodeSettings

    eps = [play_episode(model, tokenizer, inst, org, EpisodeSettings(max_turns=4), greedy=True)[0]
           for inst in instances]
    details = [ep.score() for ep in eps]
    answers = [a.strip() for a in (extract_answer(ep.final_text)[0] for ep in eps) if a is not None and a.strip()]
    return {"warmup/format_rate": sum(d["reward"] >= 0.1 for d in details) / len(details),
            "warmup/accuracy": sum(d["reward"] >= 1.0 for d in details) / len(details),
            "warmup/answered": len(answers) / len(details),
            "warmup/distinct": len(set(answers)) / len(answers) if answers else 0.0,
            "warmup/none_share": sum(a.lower() == "none" for a in answers) / len(details),
            "warmup/queried": sum(any(t.query for t in ep.turns) for ep in eps) / len(details)}


def format_warmup(model: Any, tokenizer: Any, instances: list[dict[str, Any]], steps: int, batch_size: int = 8,
                  lr: float = 1e-4, seed: int = 0, max_prompt_tokens: int = 0,
                  progress: bool = True, mode: str = "fp32", check_every: int = 0, probe_size: int = 32,
                  target_format: float = 0.9, min_distinct: float = 0.5,
                  episodes_org: str | Path | None = None) -> list[dict[str, float]]:
    """Train ``model`` in place for at most ``steps`` steps of next-token loss on the target tokens only.

    ``mode`` is a resolved precision (``seccrm.engine.precision``): ``mixed`` runs forward and backward under
    bf16 autocast while the weights and AdamW state stay float32. With ``check_every`` > 0, a probe of
    ``probe_size`` training instances (one per task in turn) is answered greedily before the first
    step and every ``check_every`` steps; training stops once its format rate reaches
    ``target_format`` or its distinct-answer share falls below ``min_distinct``. Check rows carry
    ``"check": 1`` and a ``"stop"`` reason on the last one.

    With ``episodes_org`` (an agentic suite's org), the targets are the scripted analyst's episodes
    (`episode_demonstrations`, at most ``max_prompt_tokens`` tokens in all when set) and the probe
    plays episodes.
    """

    rng = random.Random(seed)
    masks: dict[int, list[int]] = {}
    if episodes_org is not None:
        demos = episode_demonstrations(tokenizer, instances, episodes_org, max_prompt_tokens)
        keep = sorted(demos)
        if not keep:
            raise ValueError("no training episode was solved by a scripted analyst within the length limit")
        prompts = {i: d[0] for i, d in demos.items()}
        targets = {i: d[1] for i, d in demos.items()}
        masks = {i: d[2] for i, d in demos.items()}
    else:
        encoded = encode_prompts(tokenizer, [inst["messages"] for inst in instances])
        keep = [i for i, p in enumerate(encoded) if not max_prompt_tokens or len(p) <= max_prompt_tokens]
        if not keep:
            raise ValueError("no warm-up instance fits the prompt length limit")
        prompts = dict(enumerate(encoded))
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        targets = {i: tokenizer.encode(warmup_target(instances[i]), add_special_tokens=False) + eos for i in keep}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    probe_rng = random.Random(f"{seed}/warmup-probe")
    probe = [instances[i] for i in balanced_order(instances, keep, probe_rng)[:probe_size]]
    log: list[dict[str, Any]] = []

    def check(step: int) -> str | None:
        model.eval()
        with precision.autocast(mode, next(model.parameters()).device):
            answers = (probe_episodes(model, tokenizer, probe, episodes_org) if episodes_org is not None
                       else probe_answers(model, tokenizer, probe))
            row: dict[str, Any] = {**answers, "step": step, "check": 1}
        model.train()
        log.append(row)
        if row["warmup/format_rate"] >= target_format:
            row["stop"] = f"format rate {row['warmup/format_rate']:.2f} >= {target_format}"
        elif step > 0 and row["warmup/answered"] >= 0.25 and row["warmup/distinct"] < min_distinct:
            row["stop"] = f"distinct answers {row['warmup/distinct']:.2f} < {min_distinct} (collapsing)"
        return row.get("stop")

    model.train()
    order: list[int] = []
    if check_every and check(0):
        model.eval()
        return log
    for step in tqdm(range(steps), desc="format warm-up", unit="step", disable=not progress,
                     dynamic_ncols=True, file=sys.stderr):
        if len(order) < batch_size:
            order.extend(balanced_order(instances, keep, rng))
        idx, order = order[:batch_size], order[batch_size:]
        opt.zero_grad(set_to_none=True)
        total = sum(sum(masks[i]) if i in masks else len(targets[i]) for i in idx)
        loss_sum = 0.0
        for i in idx:   # one instance at a time: the prompt cache of one is all that lives at once
            with precision.autocast(mode, next(model.parameters()).device):
                nll, _ = answer_nll(model, prompts[i], targets[i], masks.get(i))
            (nll / total).backward()
            loss_sum += nll.detach().item()
        loss = torch.tensor(loss_sum / total)
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if torch.isfinite(loss) and torch.isfinite(gnorm):
            opt.step()
        opt.zero_grad(set_to_none=True)   # the probe below then decodes without 0.5 GB of stale gradients
        log.append({"warmup/loss": loss.item(), "warmup/grad_norm": gnorm.item(), "step": step + 1})
        release_memory()   # prompts of every length fragment the heap: 4.4 GB after 6 steps, 2.9 with this
        if check_every and (step + 1) % check_every == 0 and check(step + 1):
            break
    else:
        if check_every and log and "check" not in log[-1]:
            check(steps)
        if check_every:
            log[-1].setdefault("stop", f"step limit {steps}")
    model.eval()
    return log


def save_model_atomic(model: Any, tokenizer: Any, out: str | Path) -> Path:
    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return write_folder_atomic(out, write)


def run_warmup(data: str, model_spec: str, out: str | Path, steps: int, batch_size: int, lr: float,
               seed: int = 0, max_prompt_tokens: int = 0, bf16: str = "auto", check_every: int = 0,
               probe_size: int = 32, target_format: float = 0.9) -> Path:
    """Load, warm up on the training split, save a Hugging Face folder at ``out/model``."""

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    mode = precision.resolve(bf16, device)
    model, tok = load_model_and_tokenizer(model_spec, dtype=precision.weight_dtype(mode), device=device)
    agentic = suite_mode(data) == "agentic"
    log = format_warmup(model, tok, load_split(data, "train"), steps, batch_size, lr, seed, max_prompt_tokens,
                        mode=mode, check_every=check_every, probe_size=probe_size, target_format=target_format,
                        episodes_org=Path(data) / "org.sqlite" if agentic else None)
    with open(out / "warmup_metrics.jsonl", "w") as f:
        for row in log:
            f.write(json.dumps(row) + "\n")
    return save_model_atomic(model, tok, out / "model")
