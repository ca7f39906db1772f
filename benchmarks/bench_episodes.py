"""Episodes per minute: one KV cache per episode against the plain loop that prefills the history every turn.

    python benchmarks/bench_episodes.py --data DIR --model smollm2 --episodes 8 --max-turns 4

Both play the same episodes (greedy, the same settings, ``seccrm.engine.episodes.play_episode`` with
``reuse_cache`` on and off), alternating per episode so that a change in the machine's load hits both.
Instances: the suite's first ``--episodes`` training instances, rendered question-only when they are
single-turn seccrm instances (``seccrm.world.episode.question_only``; imported CRMArena-Pro instances
are episodes already). Prints, for each mode, episodes per minute, tokens fed to the model, and how
many episodes came out identical (token for token).
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a built or imported suite")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--max-turns", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=96, help="per turn")
    ap.add_argument("--bf16", default="auto")
    args = ap.parse_args()

    import torch

    from seccrm.data import load_split
    from seccrm.engine import precision
    from seccrm.engine.episodes import play_episode
    from seccrm.engine.models import load_model_and_tokenizer
    from seccrm.rl.metrics import machine_summary
    from seccrm.world.episode import EpisodeSettings, question_only, schema_for
    from seccrm.world.rewards import org_path

    print(f"machine: {machine_summary()}")
    model, tok = load_model_and_tokenizer(args.model, dtype=precision.eval_dtype(args.bf16, "cpu"), device="cpu")
    insts = load_split(args.data, "train")[: args.episodes]
    schema = schema_for(org_path(insts[0]))
    insts = [i if i.get("metadata", {}).get("source") == "crmarena-pro" else question_only(i, schema) for i in insts]
    settings = EpisodeSettings(max_turns=args.max_turns, max_model_tokens=args.max_turns * args.max_new_tokens,
                               max_new_tokens_per_turn=args.max_new_tokens)
    seconds = {True: 0.0, False: 0.0}
    fed = {True: 0, False: 0}
    same, turns = 0, 0
    torch.manual_seed(0)
    for inst in insts:
        out = {}
        for reuse in (True, False):
            t0 = time.perf_counter()
            ep, ids, mask, n_fed = play_episode(model, tok, inst, org_path(inst), settings, greedy=True,
                                                reuse_cache=reuse)
            seconds[reuse] += time.perf_counter() - t0
            fed[reuse] += n_fed
            out[reuse] = (ids, mask)
        same += out[True] == out[False]
        turns += len(ep.turns)
    n = len(insts)
    print(f"{n} episodes, {turns / n:.1f} turns on average, up to {args.max_new_tokens} tokens a turn; "
          f"identical in both modes: {same} of {n}")
    print("| decoding | episodes / min | tokens fed to the model | seconds |")
    print("|---|---|---|---|")
    for reuse, name in ((True, "one cache per episode"), (False, "re-prefill every turn")):
        print(f"| {name} | {60 * n / seconds[reuse]:.2f} | {fed[reuse]} | {seconds[reuse]:.0f} |")


if __name__ == "__main__":
    main()
