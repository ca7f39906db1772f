"""`seccrm eval`: the command line of `seccrm.evaluation.evaluate`."""

from __future__ import annotations

import argparse

from seccrm.data import load_split
from seccrm.data.baselines import BASELINE_TITLES, baseline_table
from seccrm.engine.models import load_model_and_tokenizer, pick_device
from seccrm.engine.precision import eval_dtype
from seccrm.errors import UserError
from seccrm.evaluation.evaluate import evaluate_instances
from seccrm.files import write_json_atomic


# ---------------------------------------------------------------------------------------- CLI
def cmd_eval(args: argparse.Namespace) -> int:

    try:
        instances = load_split(args.data, args.split)
        if args.limit:
            instances = instances[: args.limit]
        device = pick_device(args.device)
        dtype = eval_dtype(args.bf16, device)
        model, tok = load_model_and_tokenizer(args.model, dtype=dtype, device=str(device))
    except (ValueError, FileNotFoundError, OSError) as e:
        raise UserError(str(e)) from e
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
        print(f"  baseline {BASELINE_TITLES[name]:34s} {acc:.3f}")
    beaten = s["accuracy"] > base["best"]
    print(f"  the model {'beats' if beaten else 'does NOT beat'} every trivial baseline (best {base['best']:.3f})")
    for task, b in s["by_task"].items():
        print(f"  {task:34s} {b['accuracy']:.3f}  (n={b['n']}; best baseline "
              f"{max(base['by_task'].get(task, {0: 0.0}).values()):.3f})")
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("eval", help="Evaluate a model or checkpoint on val or test (greedy).",
                       description="Score one greedy completion per instance; write per-instance rewards and "
                       "a summary with bootstrap 95%% intervals by task, skill and difficulty to --out.")
    p.add_argument("--data", required=True, help="Suite directory from `seccrm build`.")
    p.add_argument("--model", required=True, help="'smollm2', 'tiny', a Hugging Face folder or a checkpoint.")
    p.add_argument("--split", choices=("val", "test", "train"), default="test")
    p.add_argument("--out", required=True, help="Where to write the JSON results.")
    p.add_argument("--limit", type=int, default=0, help="Score only the first N instances (0 = all).")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto")
    p.add_argument("--bf16", default="auto", choices=("auto", "on", "off"),
                   help="Decode in bf16 ('auto': on GPUs and on CPUs with bf16 matrix units) or float32 ('off').")
    p.set_defaults(func=cmd_eval)
