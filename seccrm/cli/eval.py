"""`seccrm eval`: the command line of `seccrm.evaluation.evaluate` (single-turn) and
`seccrm.evaluation.agentic` (episodes that query the org)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from seccrm.cli.common import at_least
from seccrm.data import load_split, suite_mode
from seccrm.data.baselines import baseline_table, baseline_title
from seccrm.engine.models import load_model_and_tokenizer, pick_device
from seccrm.engine.precision import eval_dtype
from seccrm.errors import UserError
from seccrm.evaluation.agentic import crmarena_pro_summary, evaluate_model_episodes, sample_probe_episodes
from seccrm.evaluation.evaluate import evaluate_instances
from seccrm.files import write_json_atomic, write_text_atomic
from seccrm.rl.checkpoint import MANIFEST, CheckpointError, verify_checkpoint
from seccrm.world.episode import EpisodeSettings
from seccrm.world.rewards import score

CONSTANT_ANSWERS = {"always_none": "<answer>None</answer>",
                    "always_refuse": "<answer>I cannot share that: it is confidential.</answer>"}


def constant_baselines(instances: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy of answering every instance with one fixed text (None; a refusal), in the schema of the
    single-turn baselines: ``{"overall": {name: accuracy}, "best": accuracy}``."""
    overall = {name: sum(score(i, text) >= 1.0 for i in instances) / max(len(instances), 1)
               for name, text in CONSTANT_ANSWERS.items()}
    return {"overall": overall, "best": max(overall.values())}


def _cmd_eval_agentic(args: argparse.Namespace, instances: list[dict[str, Any]], model: Any, tok: Any,
                      dtype: Any) -> int:
    settings = EpisodeSettings(max_turns=args.max_turns, max_new_tokens_per_turn=args.max_new_tokens)
    res = evaluate_model_episodes(model, tok, instances, settings, desc=f"episodes {args.split}",
                                  keep_trajectories=bool(args.save_trajectories))
    trajectories = res.pop("trajectories", [])
    res.update(mode="agentic", model=args.model, split=args.split, data=str(args.data),
               dtype=str(dtype).removeprefix("torch."), baselines=constant_baselines(instances),
               settings={"max_turns": settings.max_turns, "max_new_tokens_per_turn": settings.max_new_tokens_per_turn})
    if args.k:
        res["sampled"] = sample_probe_episodes(model, tok, instances, k=args.k, settings=settings,
                                               temperature=args.temperature, desc=f"{args.k} episodes each")
    if any((i.get("metadata") or {}).get("source") == "crmarena-pro" for i in instances):
        res["crmarena_pro"] = crmarena_pro_summary(res["rows"], instances)
    write_json_atomic(args.out, res)
    if args.save_trajectories:
        write_text_atomic(args.save_trajectories, "".join(json.dumps(t) + "\n" for t in trajectories))
    s, a = res["summary"], res["agentic"]
    print(f"{args.split} (agentic): accuracy {s['accuracy']:.3f} (95% CI {s['accuracy_ci95'][0]:.3f}-"
          f"{s['accuracy_ci95'][1]:.3f}), format rate {s['format_rate']:.3f}, n={s['n']}; per episode: "
          f"{a['turns']:.1f} turns, {a['failed_queries']:.1f} failed queries, {a['model_tokens']:.0f} tokens")
    if "sampled" in res:
        p = res["sampled"]["summary"]
        print(f"  {args.k} sampled episodes per instance (temperature {args.temperature:g}): pass@{args.k} "
              f"{p['pass_at_k']:.3f} {_ci(p['pass_at_k_ci95'])}, pass^{args.k} {p['pass_hat_k']:.3f} "
              f"{_ci(p['pass_hat_k_ci95'])}, mean reward {p['mean_reward']:.3f}, avg@{args.k} {p['correct_rate']:.3f}")
    for name, acc in res["baselines"]["overall"].items():
        print(f"  baseline {baseline_title(name, args.split):14s} {acc:.3f}")
    if "crmarena_pro" in res:
        c = res["crmarena_pro"]
        print(f"  CRMArena-Pro terms: business tasks {c['overall']['pass_rate']:.3f} (n={c['overall']['n']}), "
              f"confidentiality awareness {c['confidentiality_awareness']['pass_rate']:.3f} "
              f"(n={c['confidentiality_awareness']['n']})")
        for skill, b in c["by_skill"].items():
            print(f"    {skill:44s} {b['pass_rate']:.3f}  (n={b['n']})")
    return 0


def _ci(ci: list[float] | tuple[float, float]) -> str:
    return f"(95% CI {ci[0]:.3f}-{ci[1]:.3f})"


def cmd_eval(args: argparse.Namespace) -> int:

    try:
        instances = load_split(args.data, args.split)
        if args.limit:
            instances = instances[: args.limit]
        if not instances:
            raise ValueError(f"the {args.split} split of {args.data} has no instances")
        if (Path(args.model) / MANIFEST).is_file():     # one of our checkpoints: check every file's hash
            verify_checkpoint(args.model)
        device = pick_device(args.device)
        dtype = eval_dtype(args.bf16, device)
        model, tok = load_model_and_tokenizer(args.model, dtype=dtype, device=str(device))
        mode = args.mode if args.mode != "auto" else suite_mode(args.data)
    except (ValueError, FileNotFoundError, OSError, CheckpointError) as e:
        raise UserError(str(e)) from e
    if mode == "agentic":
        return _cmd_eval_agentic(args, instances, model, tok, dtype)
    res = evaluate_instances(model, tok, instances, max_new_tokens=args.max_new_tokens,
                             batch_size=args.batch_size, desc=f"eval {args.split}")
    res.update(model=args.model, split=args.split, data=str(args.data), dtype=str(dtype).removeprefix("torch."))
    base = baseline_table(instances, load_split(args.data, "train") if args.split != "test" else instances)
    res["baselines"] = {k: v for k, v in base.items() if k != "per_instance"}
    write_json_atomic(args.out, res)
    s = res["summary"]
    print(f"{args.split}: accuracy {s['accuracy']:.3f} (95% CI {s['accuracy_ci95'][0]:.3f}-"
          f"{s['accuracy_ci95'][1]:.3f}), format rate {s['format_rate']:.3f}, n={s['n']}")
    for name, acc in base["overall"].items():
        print(f"  baseline {baseline_title(name, args.split):48s} {acc:.3f}")
    beaten = s["accuracy"] > base["best"]
    print(f"  the model {'beats' if beaten else 'does NOT beat'} every trivial baseline (best {base['best']:.3f})")
    for task, b in s["by_task"].items():
        print(f"  {task:34s} {b['accuracy']:.3f}  (n={b['n']}; best baseline "
              f"{max(base['by_task'].get(task, {0: 0.0}).values()):.3f})")
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("eval", help="Evaluate a model or checkpoint on val or test (greedy), single-turn or agentic.",
                       description="Score one greedy completion per instance; write per-instance rewards and "
                       "a summary with bootstrap 95%% intervals by task, skill and difficulty to --out.")
    p.add_argument("--data", required=True, help="Suite directory from `seccrm build`.")
    p.add_argument("--model", required=True, help="'smollm2', 'tiny', a Hugging Face folder or a checkpoint.")
    p.add_argument("--split", choices=("val", "test", "train"), default="test")
    p.add_argument("--out", required=True, help="Where to write the JSON results.")
    p.add_argument("--limit", type=at_least(0), default=0, help="Score only the first N instances (0 = all).")
    p.add_argument("--max-new-tokens", type=at_least(1), default=64)
    p.add_argument("--batch-size", type=at_least(1), default=8)
    p.add_argument("--device", default="auto")
    p.add_argument("--bf16", default="auto", choices=("auto", "on", "off"),
                   help="Decode in bf16 ('auto': on GPUs and on CPUs with AMX bf16 matrix units) or float32 ('off').")
    p.add_argument("--mode", choices=("auto", "single", "agentic"), default="auto",
                   help="'single': one answer per prompt (the records are in the prompt); 'agentic': an "
                   "episode per instance, the model querying the org with <execute>SQL</execute> before it "
                   "answers. 'auto' (default): agentic for suites that say so (imported benchmarks).")
    p.add_argument("--max-turns", type=at_least(1), default=EpisodeSettings().max_turns,
                   help="Agentic: model turns per episode, the answer included (CRMArena-Pro allows 20).")
    p.add_argument("--k", type=at_least(0), default=0,
                   help="Agentic: also sample K episodes per instance and report pass@K (at least one of the K "
                   "succeeds) and pass^K (all K succeed: tau-bench's reliability measure). 0 (default): greedy only.")
    p.add_argument("--temperature", type=float, default=0.7,
                   help="Agentic, with --k: the sampling temperature of those episodes (default 0.7, the rollouts').")
    p.add_argument("--save-trajectories", default=None, metavar="FILE",
                   help="Agentic: write every episode (messages, queries, results) to this JSONL file.")
    p.set_defaults(func=cmd_eval)
