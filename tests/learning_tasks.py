"""Tasks where learning is certain, for the learning tests (tests/test_learning.py).

A word-level tokenizer over a few dozen words, a tiny random Llama model over that vocabulary, and
suites in the suite format (``suite.json``, ``train/val.jsonl``) that the real trainer loads. The
vocabulary is small so that a random model finds a rewarded completion by sampling; whole actions
("<answer>B</answer>", one fixed query) are single words so that the action space stays small. Every
rollout, verifier, advantage, mask, log-prob and optimizer step is the library's own.
"""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path
from typing import Any

CANDIDATES = ("A", "B", "C", "D")
VALUES = ("3", "7")     # the org values of the agentic task (lookup_suite says why two)
# Four ways to ask the one-table org for its value, each a single word (SQL's spaces written as newlines).
QUERIES = tuple("<execute>" + q.replace(" ", "\n") + "</execute>"
                for q in ("SELECT v FROM t", "SELECT * FROM t", "SELECT v FROM t LIMIT 1", "SELECT max(v) AS v FROM t"))
SPECIAL = ["<pad>", "<s>", "<eos>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>"]
COPY_WORDS = ["pick", "the", "marked", "one", *CANDIDATES, *(f"[{c}]" for c in CANDIDATES),
              *(f"<answer>{c}</answer>" for c in CANDIDATES)]
LOOKUP_WORDS = ["what", "is", "v", "?", *QUERIES, *(f"<result>\nv\n{x}\n</result>" for x in VALUES),
                *(f"<answer>{x}</answer>" for x in VALUES)]
# Words are split at spaces only, so that a query's whole result ("<result>\nv\n7\n</result>") is one word.
# The model's turns carry no role word: the environment's last word is the one the model answers.
# Turns are appended (token-in token-out episodes need that).
CHAT_TEMPLATE = ("{% for m in messages %}{% if m['role'] != 'assistant' %}<|{{ m['role'] }}|> {% endif %}"
                 "{{ m['content'] }} {% endfor %}")
TEXT = {"kind": "text"}


def write_model(folder: Path, seed: int, words: list[str]) -> Path:
    """A Hugging Face folder: a tiny random Llama (hidden 64, 2 layers) and a word-level tokenizer whose
    vocabulary is the chat template's words and ``words``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from seccrm.engine.models import build_tiny_model

    vocab = {w: i for i, w in enumerate(SPECIAL + words)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(" ", behavior="removed")
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", bos_token="<s>", eos_token="<eos>",
                                  unk_token="<unk>", chat_template=CHAT_TEMPLATE)
    model = build_tiny_model(len(vocab), seed=seed, eos_token_id=vocab["<eos>"], pad_token_id=vocab["<pad>"])
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _instance(i: int, task: str, messages: list[dict[str, str]], answer: str,
              metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    # An arm of the real suite's (the curriculum knows only those); the task names are the test's own.
    return {"id": f"{task}-{i:04d}", "task": task, "skill": "KNOWLEDGE", "difficulty": "easy",
            "arm": "KNOWLEDGE/easy", "messages": messages, "answer": [answer],
            "metadata": {"answer_kind": TEXT, **(metadata or {})}}


def _write_suite(folder: Path, rows: list[dict[str, Any]], agentic: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "suite.json").write_text(json.dumps({"format": 2, "agentic": agentic}))
    for split in ("train", "val"):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def copy_suite(folder: Path, n: int = 48) -> Path:
    """Single turn: the prompt lists the four candidates in some order, one of them marked ("C [A] D B");
    the answer is the marked one ("<answer>A</answer>"), scored by the real text verifier."""
    rng = random.Random(0)
    rows = []
    for i in range(n):
        order = rng.sample(CANDIDATES, len(CANDIDATES))
        gold = rng.choice(CANDIDATES)
        shown = " ".join(f"[{c}]" if c == gold else c for c in order)
        rows.append(_instance(i, "copy", [{"role": "user", "content": f"pick the marked one {shown}"}], gold))
    return _write_suite(folder, rows, agentic=False)


def lookup_suite(folder: Path, n: int = 32) -> Path:
    """Agentic: one org per value, each a one-table SQLite file (``t(v)``, one row); every instance asks
    the same question ("what is v ?") of one of them, so the answer is in the org alone: query it,
    then answer with the result. With two values, an answer that ignores the result is right half of
    the time at best, so an accuracy of 0.8 needs the model to read it."""
    rows = []
    for i in range(n):
        value = VALUES[i % len(VALUES)]
        path = folder / f"org-{value}.sqlite"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with sqlite3.connect(path) as db:
                db.execute("CREATE TABLE t (v TEXT)")
                db.execute("INSERT INTO t VALUES (?)", (value,))
            db.close()
        rows.append(_instance(i, "lookup", [{"role": "user", "content": "what is v ?"}], value,
                              metadata={"org_path": str(path.resolve())}))
    return _write_suite(folder, rows, agentic=True)
