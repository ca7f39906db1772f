"""`seccrm play`: one agentic episode, played by a model or typed by a person."""

from __future__ import annotations

import argparse
import json
from typing import Any

from seccrm.cli.common import at_least
from seccrm.data import load_split
from seccrm.data.build import SPLITS
from seccrm.engine.episodes import model_policy
from seccrm.engine.models import load_model_and_tokenizer
from seccrm.errors import UserError
from seccrm.world.episode import EpisodeSettings, Policy, run_episode
from seccrm.world.rewards import org_path


def _find(data: str, instance_id: str) -> dict[str, Any]:
    for split in SPLITS:
        try:
            for inst in load_split(data, split):
                if inst["id"] == instance_id:
                    return inst
        except FileNotFoundError:
            continue
    raise UserError(f"no instance {instance_id!r} in {data} (ids are in DIR/{{train,val,test}}.jsonl)")


def human_policy() -> Policy:
    """You are the model: type each turn on one line (``\\n`` for a line break); an empty line ends."""
    def policy(messages: list[dict[str, str]]) -> tuple[str, int]:
        try:
            text = input("you> ").replace("\\n", "\n")
        except EOFError:
            text = ""
        return text, len(text.split())
    return policy


def _echo(policy: Policy) -> Policy:
    def wrapped(messages: list[dict[str, str]]) -> tuple[str, int]:
        if messages[-1]["role"] == "user":
            print(f"\n--- {'environment' if len(messages) > 2 else 'question'} ---\n{messages[-1]['content']}")
        text, n = policy(messages)
        print(f"\n--- model ({n} tokens) ---\n{text}")
        return text, n
    return wrapped


def cmd_play(args: argparse.Namespace) -> int:
    inst = _find(args.data, args.id)
    settings = EpisodeSettings(max_turns=args.max_turns, max_new_tokens_per_turn=args.max_new_tokens)
    if args.human:
        policy = human_policy()
    else:
        try:
            model, tok = load_model_and_tokenizer(args.model)
        except (ValueError, FileNotFoundError, OSError) as e:
            raise UserError(str(e)) from e
        policy = model_policy(model, tok, max_new_tokens=args.max_new_tokens, greedy=not args.sample)
    print(f"--- system ---\n{inst['messages'][0]['content']}" if args.show_system else
          "(system message with the protocol and the schema: --show-system prints it)")
    ep = run_episode(_echo(policy), inst, org_path(inst), settings)
    d = ep.score()
    print(f"\n=== {d['end_reason']} after {d['turns']} turn(s), {d['failed_queries']} failed "
          f"quer{'y' if d['failed_queries'] == 1 else 'ies'}: reward {d['reward']} "
          f"({'correct' if d['correct'] else d['error']}); gold: {', '.join(inst['answer'])}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({**ep.trajectory(), "score": d}, f, indent=1)
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("play", help="Play one agentic episode with a model, or type the model's turns yourself.",
                       description="Run one episode of an instance: the question and the org's schema, then "
                       "<execute>SQL</execute> turns answered by the read-only sandbox, until <answer>. "
                       "Prints every turn and the score.")
    p.add_argument("--data", required=True, help="Suite directory (built or imported).")
    p.add_argument("--id", required=True, help="Instance id, e.g. crmarena-pro-b2b-00003.")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--model", default="smollm2", help="Model that plays (default: smollm2).")
    who.add_argument("--human", action="store_true", help="You type the model's turns.")
    p.add_argument("--sample", action="store_true", help="Sample at temperature 0.7 instead of greedy decoding.")
    p.add_argument("--max-turns", type=at_least(1), default=EpisodeSettings().max_turns)
    p.add_argument("--max-new-tokens", type=at_least(1), default=EpisodeSettings().max_new_tokens_per_turn)
    p.add_argument("--show-system", action="store_true", help="Print the system message (protocol and schema).")
    p.add_argument("--out", default=None, help="Write the trajectory and score as JSON here.")
    p.set_defaults(func=cmd_play)
