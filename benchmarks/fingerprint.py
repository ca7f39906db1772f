"""Behaviour fingerprint: the same seed must give the same suite bytes, training metrics and
greedy answers across refactors. Runs the public `seccrm` command only (so it works on any
layout), on a tiny random model, and prints one JSON object of hashes.

    python benchmarks/fingerprint.py --work /tmp/fp > before.json
    ... change the code ...
    python benchmarks/fingerprint.py --work /tmp/fp2 > after.json && diff before.json after.json

Timing fields (seconds, tokens per second, memory) are left out of the metrics hash; everything
else in metrics.jsonl (loss, rewards, advantages, arm values and probabilities) is in it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

VOLATILE = ("time", "_s", "per_s", "tok_s", "mem", "rss", "wall", "sec")


def _run(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "seccrm", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _stable(row: dict) -> dict:
    return {k: v for k, v in row.items() if not any(s in k for s in VOLATILE)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, type=Path, help="empty scratch directory")
    parser.add_argument("--drop", action="append", default=[], metavar="PREFIX",
                        help="leave metrics whose name starts with PREFIX out of the hash (metrics added later)")
    args = parser.parse_args()
    suite, run = args.work / "suite", args.work / "run"
    _run("build", "--out", str(suite), "--seed", "0", "--size", "tiny", "--train-per-task", "12",
         "--test-per-task", "6", "--no-progress")
    _run("train", "--data", str(suite), "--model", "tiny", "--out", str(run), "--seed", "0",
         "--steps", "3", "--prompts-per-step", "4", "--group-size", "4", "--max-new-tokens", "16",
         "--eval-every", "0", "--save-every", "3", "--device", "cpu", "--bf16", "off",
         "--no-skip-zero-adv", "--entropy-coef", "0.01", "--kl-coef", "0.01", "--lr", "1e-3")
    checkpoint = run / "checkpoints" / "step_000003"
    _run("eval", "--data", str(suite), "--model", str(checkpoint), "--split", "val", "--out",
         str(args.work / "eval.json"), "--limit", "24", "--max-new-tokens", "16", "--device", "cpu",
         "--bf16", "off")
    # the embedded default model's greedy answers on a few validation prompts (real text, not noise)
    _run("eval", "--data", str(suite), "--model", "smollm2", "--split", "val", "--out",
         str(args.work / "eval_smollm2.json"), "--limit", "8", "--max-new-tokens", "48")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rows = [{k: v for k, v in r.items() if not k.startswith(tuple(args.drop))} for r in rows] if args.drop else rows
    metrics = json.dumps([_stable(r) for r in rows], sort_keys=True)
    evals = json.loads((args.work / "eval.json").read_text())
    answers = json.dumps(evals["rows"], sort_keys=True, default=str)
    out = {f"suite/{p.name}": _sha(p) for p in sorted(suite.iterdir())
           if p.suffix in (".jsonl", ".json") and p.name != "suite.json"}
    out["weights"] = _sha(checkpoint / "model.safetensors")
    out["metrics"] = hashlib.sha256(metrics.encode()).hexdigest()[:16]
    out["eval"] = hashlib.sha256(answers.encode()).hexdigest()[:16]
    smol = json.loads((args.work / "eval_smollm2.json").read_text())["rows"]
    out["eval_smollm2"] = hashlib.sha256(json.dumps(smol, sort_keys=True).encode()).hexdigest()[:16]
    out["steps"] = len(rows)
    print(json.dumps(out, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
