"""Evaluation in agentic mode: one episode per instance (the model queries the org, then answers),
scored by the same verifiers, with turns, failed queries and tokens per episode; and the summary in
CRMArena-Pro's own terms for imported suites.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from seccrm.engine.episodes import play_or_fall_back
from seccrm.evaluation.evaluate import probe_result, probe_row, summarise
from seccrm.evaluation.stats import bootstrap_ci
from seccrm.world.episode import Episode, EpisodeSettings, Policy, run_episode
from seccrm.world.rewards import org_path


def evaluate_episodes(instances: list[dict[str, Any]], policy: Policy | None, settings: EpisodeSettings | None = None,
                      desc: str = "episodes", progress: bool = True, keep_trajectories: bool = False,
                      play: Callable[[dict[str, Any]], Episode] | None = None) -> dict[str, Any]:
    """Play one episode per instance with ``policy`` (or ``play(instance)``, which returns the finished
    episode); rows, a summary (accuracy and reward with intervals, by task / skill / difficulty) and the
    agentic means (turns, failed queries, tokens)."""
    if policy is None and play is None:
        raise ValueError("give a policy or a play function")
    rows, trajectories = [], []
    t0 = time.perf_counter()
    for inst in tqdm(instances, desc=desc, unit="ep", disable=not progress, file=sys.stderr, leave=False):
        ep = play(inst) if play is not None else run_episode(policy, inst, org_path(inst), settings)  # type: ignore[arg-type]
        d = ep.score()
        rows.append({"id": inst["id"], "task": inst["task"], "skill": inst["skill"],
                     "difficulty": inst["difficulty"], "reward": float(d["reward"]),
                     "correct": bool(d["correct"]), "formatted": bool(d["formatted"]), "f1": d.get("f1"),
                     "turns": d["turns"], "queries": d["queries"], "queries_ran": d["queries_ran"],
                     "failed_queries": d["failed_queries"],
                     "model_tokens": d["model_tokens"], "end_reason": d["end_reason"],
                     "completion": ep.final_text})
        if keep_trajectories:
            trajectories.append(ep.trajectory())
    out: dict[str, Any] = {"summary": summarise(rows), "agentic": agentic_means(rows), "rows": rows,
                           "seconds": time.perf_counter() - t0}
    if keep_trajectories:
        out["trajectories"] = trajectories
    return out


def agentic_means(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean turns, failed queries and model tokens per episode, and how episodes ended."""
    if not rows:
        return {}
    ends: dict[str, int] = defaultdict(int)
    for r in rows:
        ends[r["end_reason"]] += 1
    per_episode = {k: float(np.mean([r[k] for r in rows])) for k in ("queries", "queries_ran")
                   if all(k in r for r in rows)}
    return {**per_episode, "turns": float(np.mean([r["turns"] for r in rows])),
            "failed_queries": float(np.mean([r["failed_queries"] for r in rows])),
            "model_tokens": float(np.mean([r["model_tokens"] for r in rows])),
            "end_reasons": dict(sorted(ends.items()))}


def crmarena_pro_summary(rows: list[dict[str, Any]], instances: list[dict[str, Any]]) -> dict[str, Any]:
    """Scores in CRMArena-Pro's terms: pass rate per task, per its business skill and overall, mean
    token F1 on fuzzy_match tasks, and the confidentiality awareness rate (refusals on the
    privacy_rejection rows), each with a bootstrap interval."""
    meta = {i["id"]: i.get("metadata") or {} for i in instances}

    def block(sel: list[dict[str, Any]]) -> dict[str, Any]:
        passed = [1.0 if r["correct"] else 0.0 for r in sel]
        return {"n": len(sel), "pass_rate": float(np.mean(passed)) if sel else float("nan"),
                "pass_rate_ci95": bootstrap_ci(passed)}

    by_task, by_skill = defaultdict(list), defaultdict(list)
    privacy, fuzzy_f1 = [], []
    for r in rows:
        m = meta.get(r["id"], {})
        by_task[r["task"]].append(r)
        if m.get("reward_metric") == "privacy_rejection":
            privacy.append(r)
        else:
            by_skill[m.get("benchmark_skill", "?")].append(r)
        if m.get("reward_metric") == "fuzzy_match" and r.get("f1") is not None:
            fuzzy_f1.append(float(r["f1"]))
    business = [r for rs in by_skill.values() for r in rs]
    return {"overall": block(business), "by_task": {t: block(v) for t, v in sorted(by_task.items())},
            "by_skill": {s: block(v) for s, v in sorted(by_skill.items())},
            "confidentiality_awareness": block(privacy),
            "fuzzy_mean_f1": float(np.mean(fuzzy_f1)) if fuzzy_f1 else None}


def episode_player(model: Any, tokenizer: Any, settings: EpisodeSettings, greedy: bool = True,
                   temperature: float = 0.7, top_p: float = 0.9) -> Callable[[dict[str, Any], int], Episode]:
    """``play(instance, seed)``: one episode as training plays it (`seccrm.engine.episodes.play_or_fall_back`:
    token in, token out with one cache per episode; the message loop where the chat template does not
    append turns). Every agentic evaluation plays through this."""

    def play(inst: dict[str, Any], seed: int = 0) -> Episode:
        return play_or_fall_back(model, tokenizer, inst, org_path(inst), settings, temperature, top_p, greedy,
                                 seed, tokens=False)[0]

    return play


def evaluate_model_episodes(model: Any, tokenizer: Any, instances: list[dict[str, Any]],
                            settings: EpisodeSettings | None = None, greedy: bool = True,
                            **kw: Any) -> dict[str, Any]:
    """`evaluate_episodes` with the model as the agent (greedy by default), through `episode_player`."""
    settings = settings or EpisodeSettings()
    play = episode_player(model, tokenizer, settings, greedy=greedy)
    return evaluate_episodes(instances, None, settings, play=lambda inst: play(inst, 0), **kw)


def sample_probe_episodes(model: Any, tokenizer: Any, instances: list[dict[str, Any]], k: int = 4,
                          settings: EpisodeSettings | None = None, temperature: float = 0.7, top_p: float = 0.9,
                          seed: int = 0, desc: str = "probe", progress: bool = True) -> dict[str, Any]:
    """The sampled probe in agentic mode: ``k`` episodes per instance sampled at the rollout
    temperature, in the format of `seccrm.evaluation.evaluate.sample_probe` (mean reward, share
    correct, pass@k, pass^k and format rate per instance, with intervals)."""
    settings = settings or EpisodeSettings()
    play = episode_player(model, tokenizer, settings, greedy=False, temperature=temperature, top_p=top_p)
    rows = []
    for n, inst in enumerate(tqdm(instances, desc=desc, unit="inst", disable=not progress, file=sys.stderr,
                                  leave=False)):
        rewards = [float(play(inst, seed + n * k + m).score()["reward"]) for m in range(k)]
        rows.append(probe_row(inst, rewards))
    return probe_result(rows, k, temperature)
