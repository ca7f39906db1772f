"""`seccrm play`: one agentic episode, played by a model or typed by a person."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from seccrm.cli.common import at_least
from seccrm.data import load_split
from seccrm.data.load import SPLITS
from seccrm.engine.episodes import model_policy
from seccrm.engine.models import load_model_and_tokenizer
from seccrm.errors import UserError
from seccrm.world.episode import EpisodeSettings, Policy, run_episode
from seccrm.world.oracle import ORACLE_SETTINGS, oracle_policy
from seccrm.world.protocol import PROTOCOLS, get_protocol
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
        if messages[-1]["role"] in ("user", "tool"):
            print(f"\n--- {'environment' if len(messages) > 2 else 'question'} ---\n{messages[-1]['content']}")
        text, n = policy(messages)
        print(f"\n--- model ({n} tokens) ---\n{text}")
        return text, n
    return wrapped


def cmd_play(args: argparse.Namespace) -> int:
    inst = _find(args.data, args.id)
    settings = (dataclasses.replace(ORACLE_SETTINGS, protocol=args.protocol) if args.oracle else
                EpisodeSettings(max_turns=args.max_turns, max_new_tokens_per_turn=args.max_new_tokens,
                                protocol=args.protocol))
    if args.human:
        policy = human_policy()
    elif args.oracle:
        try:
            policy = oracle_policy(inst, args.protocol)
        except KeyError as e:
            raise UserError(str(e.args[0])) from None
    else:
        try:
            model, tok = load_model_and_tokenizer(args.model)
        except (ValueError, FileNotFoundError, OSError) as e:
            raise UserError(str(e)) from e
        policy = model_policy(model, tok, max_new_tokens=args.max_new_tokens, greedy=not args.sample,
                              protocol=args.protocol)
    system = get_protocol(args.protocol).opening(inst["messages"])[0]["content"]
    print(f"--- system ({args.protocol}) ---\n{system}" if args.show_system else
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


def cmd_oracle(args: argparse.Namespace) -> int:
    from collections import defaultdict

    from tqdm.auto import tqdm

    from seccrm.data import suite_mode
    from seccrm.world.episode import question_only, schema_for
    from seccrm.world.oracle import oracle_table, oracles
    from seccrm.world.tasks.base import ALL_TASK_SKILLS

    org = Path(args.data) / "org.sqlite"
    if not org.is_file():
        raise UserError(f"no org.sqlite in {args.data}: build a suite first (seccrm build --mode agentic)")
    agentic = suite_mode(args.data) == "agentic"
    schema = None if agentic else schema_for(org)
    known = oracles()
    insts = []
    for split in args.splits.split(","):
        for inst in load_split(args.data, split):
            if inst["task"] in known and (not args.task or inst["task"] in args.task):
                insts.append(inst if agentic else question_only(inst, schema or ""))
    if args.per_cell:
        cells: dict[tuple[str, str], int] = defaultdict(int)
        kept = []
        for inst in insts:
            key = (inst["task"], inst["difficulty"])
            if cells[key] < args.per_cell:
                cells[key] += 1
                kept.append(inst)
        insts = kept
    if not insts:
        raise UserError(f"no instance of a task with an oracle in {args.data} ({args.splits})")
    rows = []
    settings = dataclasses.replace(ORACLE_SETTINGS, protocol=args.protocol)
    for inst in tqdm(insts, desc="oracle episodes", unit="ep", dynamic_ncols=True, leave=False):
        rows.extend(oracle_table([inst], org, settings))
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by[(r["task"], r["difficulty"])].append(r)
    order = {t: i for i, t in enumerate(ALL_TASK_SKILLS)}
    print("| task | level | solved | turns (mean, max) | queries | SQL characters (mean) |")
    print("|---|---|---|---|---|---|")
    levels = {"easy": 0, "medium": 1, "hard": 2}
    for (task, level), sel in sorted(by.items(), key=lambda kv: (order.get(kv[0][0], 99), levels.get(kv[0][1], 9))):
        n = len(sel)
        ok = sum(r["correct"] for r in sel)
        turns = [r["turns"] for r in sel]
        print(f"| {task} | {level} | {ok}/{n} | {sum(turns) / n:.1f}, {max(turns)} | "
              f"{sum(r['queries'] for r in sel) / n:.1f} | {sum(r['sql_chars'] for r in sel) / n:.0f} |")
    failed = [r for r in rows if not r["correct"]]
    for r in failed[:args.show_failures]:
        print(f"FAILED {r['id']} ({r['task']}/{r['difficulty']}): {r['end_reason']}: {r.get('error')}; "
              f"answer {r.get('answer', '')!r}, gold {r.get('gold')}")
    print(f"{len(rows) - len(failed)} of {len(rows)} episodes solved by the oracles (protocol {args.protocol})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
    return 1 if failed else 0


def register_cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("play", help="Play one agentic episode with a model, or type the model's turns yourself.",
                       description="Run one episode of an instance: the question and the org's schema, then "
                       "<execute>SQL</execute> turns (or `sql` tool calls, --protocol tools) answered by the "
                       "read-only sandbox, until <answer>. Prints every turn and the score.")
    p.add_argument("--data", required=True, help="Suite directory (built or imported).")
    p.add_argument("--id", required=True, help="Instance id, e.g. crmarena-pro-b2b-00003.")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--model", default="smollm2", help="Model that plays (default: smollm2).")
    who.add_argument("--human", action="store_true", help="You type the model's turns.")
    who.add_argument("--oracle", action="store_true",
                     help="The task's scripted analyst plays (seccrm's own tasks; 20 turns, see `seccrm oracle`).")
    p.add_argument("--sample", action="store_true", help="Sample at temperature 0.7 instead of greedy decoding.")
    p.add_argument("--max-turns", type=at_least(1), default=EpisodeSettings().max_turns)
    p.add_argument("--max-new-tokens", type=at_least(1), default=EpisodeSettings().max_new_tokens_per_turn)
    p.add_argument("--show-system", action="store_true", help="Print the system message (protocol and schema).")
    _protocol_flag(p)
    p.add_argument("--out", default=None, help="Write the trajectory and score as JSON here.")
    p.set_defaults(func=cmd_play)

    p = sub.add_parser("oracle", help="Play every episode of a suite with the scripted analysts (are the tasks solvable?).",
                       description="Each task has a scripted analyst that answers an episode from the question "
                       "and the schema alone, through the same read-only sandbox and caps a model gets. This plays "
                       "it on the suite's instances (question-only; a single-turn suite is rendered so on the fly) "
                       "and prints, per task and level, how many it solved and the turns it took. Exit 1 if any "
                       "episode was not solved.")
    p.add_argument("--data", required=True, help="Suite directory (seccrm build [--mode agentic]).")
    p.add_argument("--splits", default="train,val,test", help="Comma-separated splits (default: all three).")
    p.add_argument("--task", action="append", default=None, help="Only this task (repeat for several).")
    p.add_argument("--per-cell", type=at_least(0), default=0,
                   help="At most this many instances per task and level (default 0: all).")
    p.add_argument("--show-failures", type=at_least(0), default=10, help="Failures to print (default 10).")
    p.add_argument("--json", default=None, help="Write one row per episode here.")
    _protocol_flag(p)
    p.set_defaults(func=cmd_oracle)


def _protocol_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--protocol", choices=PROTOCOLS, default="tags",
                   help="How queries are written: 'tags' (<execute>SQL</execute>, results as <result> user "
                   "messages; CRMArena-Pro's) or 'tools' (a native `sql` tool call through the chat template, "
                   "results in the tool role). Default: tags.")
