"""Episodes per minute: one KV cache per episode against the plain loop that prefills the history every turn.

    python benchmarks/bench_episodes.py --data DIR --model smollm2 --episodes 8 --max-turns 4

Both play the same episodes (greedy, the same settings, ``seccrm.engine.episodes.play_episode`` with
``reuse_cache`` on and off), alternating per episode so that a change in the machine's load hits both.
Instances: the suite's first ``--episodes`` training instances, rendered question-only when they are
single-turn seccrm instances (``seccrm.world.episode.question_only``; imported CRMArena-Pro instances
are episodes already). Prints, for each mode, episodes per minute, tokens fed to the model, and how
many episodes came out identical (token for token).

A model that never writes ``<execute>`` plays one-turn episodes, where the two modes cost the same.
``--teach-steps N`` first fine-tunes the model for N steps (Adam, on the first instance) to open every
turn with one fixed query, so that its episodes run several turns: what is measured is decoding
throughput at a given number of turns, not the quality of the answers.
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
    ap.add_argument("--teach-steps", type=int, default=0, help="teach the model to open each turn with a query")
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
    if args.teach_steps:
        teach_query(model, tok, insts[0], args.teach_steps)
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


QUERY = 'SELECT COUNT(*) FROM "Case"'


def teach_query(model, tok, inst, steps: int) -> None:  # type: ignore[no-untyped-def]
    """Fine-tune ``model`` to open each turn of ``inst``'s episodes with ``<execute>QUERY</execute>``."""
    import torch

    from seccrm.engine.episodes import turn_suffix_ids
    from seccrm.engine.rollout import encode_prompts

    script_text = f"<execute>{QUERY}</execute>"
    prompt = encode_prompts(tok, [inst["messages"]])[0]
    script = tok(script_text, add_special_tokens=False)["input_ids"]
    reply = turn_suffix_ids(tok, inst["messages"], script_text, "<result>\nCOUNT(*)\n3\n</result>")
    seq = prompt + script + reply + script
    starts = [len(prompt), len(prompt) + len(script) + len(reply)]
    pos = torch.tensor([a + k for a in starts for k in range(len(script))])
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    model.train()
    for _ in range(steps):
        hidden = model.model(input_ids=torch.tensor([seq])).last_hidden_state[0]
        loss = torch.nn.functional.cross_entropy(model.lm_head(hidden[pos - 1]), torch.tensor(seq)[pos])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


if __name__ == "__main__":
    main()
