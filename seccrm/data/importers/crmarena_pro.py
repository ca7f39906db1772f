"""Import CRMArena-Pro's task rows and org into a seccrm suite folder, graded without an LLM.

The user brings the files (nothing is downloaded or committed): the task rows of one split of the
Hugging Face dataset ``Salesforce/CRMArenaPro`` (config ``CRMArenaPro``, splits ``b2b``, ``b2c``,
``b2b_interactive``, ``b2c_interactive``) saved as JSON (a list of rows), JSONL or Parquet, and the
org's SQLite file (``local_data/crmarenapro_b2b_data.db`` in the benchmark's code repository; one
table per Salesforce object). A row is ``{idx, query, answer, task, persona, metadata: {required,
optional}, reward_metric}``.

What the import does:

- **Rows to instances.** Each row becomes a question-only agentic instance: the protocol and the
  org's schema (introspected from the file) in the system message, the query and the row's required
  context in the user message. ``answer: null`` becomes ``["None"]``; a lead_qualification gold
  written as one joined string (``"Authority, Need"``) is split into its items. The row's ``idx`` is
  kept (``metadata["idx"]``) for reporting beside published numbers.
- **Skills.** Every row keeps CRMArena-Pro's own business skill (``metadata["benchmark_skill"]``)
  and gets one of seccrm's (``TASK_SKILLS``; the three confidentiality tasks go to the optional fifth
  skill, CONFIDENTIALITY). The benchmark has no difficulty levels: every row sits at ``medium``.
- **Grading** (``metadata["answer_kind"]``, read by `seccrm.world.rewards`): ``exact_match`` ->
  ``exact_list`` (normalised set equality), ``fuzzy_match`` -> ``fuzzy`` (SQuAD token F1, a pass at
  ``TEXT_LIST_F1_THRESHOLD``), ``privacy_rejection`` -> ``refusal`` (the refusal rule). Departures
  from the upstream grader are listed in docs/crmarena-pro.md.
- **Provenance.** ``suite.json`` records both files' paths and sha256; the rows point at the org by
  its absolute path (``metadata["org_path"]``). Neither file is copied.
- **Untrusted org file.** The org is opened read-only with ``trusted_schema = OFF`` (here and in the
  sandbox) and must pass ``PRAGMA integrity_check`` (:func:`check_org_file`): a damaged or doctored
  file is refused with an ImportError_ (a ValueError) that says so, before any row is written.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from seccrm.data.build import write_parquet
from seccrm.data.load import MANIFEST_FILE, SPLITS, SUITE_FORMAT
from seccrm.files import sha256_file, write_json_atomic, write_text_atomic
from seccrm.world.arms import TASK_SKILLS, arm_name
from seccrm.world.episode import agent_messages
from seccrm.world.sandbox import open_untrusted, schema_text
from seccrm.world.tasks.base import NONE_ANSWER

SOURCE = "crmarena-pro"
ROW_FIELDS = ("idx", "query", "answer", "task", "reward_metric")
CONFIDENTIALITY_TASKS = ("private_customer_information", "internal_operation_data", "confidential_company_knowledge")
METRIC_KINDS = {"exact_match": "exact_list", "fuzzy_match": "fuzzy", "privacy_rejection": "refusal"}
JOINED_GOLD_TASKS = ("lead_qualification",)

# CRMArena-Pro's four business skills, plus its confidentiality category. Textual Reasoning and Policy
# Compliance as public training code for the benchmark lists them; the split of the other ten between
# Database Querying and Workflow Execution (routing) is our reading of the paper (docs/crmarena-pro.md).
BENCHMARK_SKILLS: dict[str, str] = {
    **{t: "Database Querying & Numerical Computation" for t in (
        "handle_time", "transfer_count", "top_issue_identification", "monthly_trend_analysis",
        "best_region_identification", "sales_amount_understanding", "sales_cycle_understanding",
        "conversion_rate_comprehension")},
    **{t: "Textual Reasoning" for t in (
        "knowledge_qa", "named_entity_disambiguation", "sales_insight_mining", "activity_priority",
        "wrong_stage_rectification")},
    **{t: "Policy Compliance" for t in (
        "lead_qualification", "quote_approval", "invalid_config", "policy_violation_identification")},
    **{t: "Workflow Execution" for t in ("case_routing", "lead_routing")},
    **{t: "Confidentiality Awareness" for t in CONFIDENTIALITY_TASKS},
}
SEC_SKILLS: dict[str, str] = {**TASK_SKILLS, **{t: "CONFIDENTIALITY" for t in CONFIDENTIALITY_TASKS}}


class ImportError_(ValueError):
    """A row or file that cannot be imported; the message names the file and the row."""


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Task rows from a JSON list, a JSONL file or a Parquet file (by suffix)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no task file at {p}")
    if p.suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(p).to_pylist()
    elif p.suffix == ".jsonl":
        from seccrm.files import read_jsonl

        rows = read_jsonl(p)
    else:
        try:
            rows = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ImportError_(f"{p}: not JSON ({e.msg} at line {e.lineno}); expected a list of rows") from None
        if isinstance(rows, dict) and "rows" in rows:
            rows = rows["rows"]
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ImportError_(f"{p}: expected a list of row objects")
    return rows


def normalise_answer(task: str, answer: Any) -> list[str]:
    """The gold as seccrm's answer list: null or [null] -> ["None"]; joined lead_qualification golds split."""
    if answer is None:
        return [NONE_ANSWER]
    items = [answer] if isinstance(answer, str) else [a for a in answer if a is not None]
    if not all(isinstance(a, str) for a in items):
        raise ImportError_(f"answer {answer!r} is not a string, a list of strings or null")
    if task in JOINED_GOLD_TASKS:
        items = [x.strip() for a in items for x in a.split(",")]
    items = [a.strip() for a in items if a.strip()]
    if not items or [a.lower() for a in items] == ["none"]:
        return [NONE_ANSWER]
    return items


def _question(row: dict[str, Any]) -> str:
    meta = row.get("metadata") or {}
    if isinstance(meta, str):
        meta = json.loads(meta) if meta.strip() else {}
    required = meta.get("required") or ""
    text = str(row["query"]).strip()
    if required:
        text += "\n\nContext:\n" + str(required).strip()
    return text + "\n\nAnswer with <answer>...</answer>: the value(s) asked for, comma-separated, or None."


def to_instance(row: dict[str, Any], split_name: str, schema: str, org_path: Path) -> dict[str, Any]:
    """One upstream row -> one seccrm instance record (see the module docstring)."""
    missing = [f for f in ROW_FIELDS if f not in row]
    if missing:
        raise ImportError_(f"row {row.get('idx', '?')}: missing field(s) {', '.join(missing)}")
    task, metric = str(row["task"]), str(row["reward_metric"])
    if task not in SEC_SKILLS:
        raise ImportError_(f"row {row['idx']}: unknown task {task!r}")
    if metric not in METRIC_KINDS:
        raise ImportError_(f"row {row['idx']}: unknown reward_metric {metric!r} (known: {', '.join(METRIC_KINDS)})")
    skill = SEC_SKILLS[task]
    meta = row.get("metadata") or {}
    if isinstance(meta, str):
        meta = json.loads(meta) if meta.strip() else {}
    return {
        "id": f"{SOURCE}-{split_name}-{int(row['idx']):05d}",
        "task": task, "skill": skill, "difficulty": "medium", "arm": arm_name(skill, "medium"),
        "messages": agent_messages(_question(row), schema),
        "answer": normalise_answer(task, row["answer"]),
        "metadata": {"source": SOURCE, "split": split_name, "idx": int(row["idx"]), "reward_metric": metric,
                     "benchmark_skill": BENCHMARK_SKILLS[task], "persona": row.get("persona"),
                     "required": meta.get("required"), "optional": meta.get("optional"),
                     "answer_kind": {"kind": METRIC_KINDS[metric], "allow_none": True},
                     "org_path": str(org_path.resolve()), "agentic": True},
    }


def import_crmarena_pro(tasks: str | Path, org: str | Path, out: str | Path, split_name: str | None = None,
                        train_share: float = 0.0) -> dict[str, Any]:
    """Write a suite folder for the rows in ``tasks`` over the org ``org``; returns the manifest.

    All rows go to ``test`` unless ``train_share`` > 0: then that share of each task's rows (by a
    stable hash of ``idx``) goes to ``train`` and the rest to ``test``; ``val`` holds the same rows
    as ``test`` so that training's periodic evaluation sees them too. ``split_name`` (default: the
    task file's stem, e.g. ``b2b``) goes into the ids.
    """
    tasks_p, org_p, out_p = Path(tasks), Path(org), Path(out)
    if not 0.0 <= train_share < 1.0:
        raise ValueError(f"train_share must be in [0, 1), got {train_share}")
    rows = read_rows(tasks_p)
    check_org_file(org_p)
    schema = schema_text(org_p)
    name = split_name or tasks_p.stem
    instances = []
    for r in rows:
        try:
            instances.append(to_instance(r, name, schema, org_p))
        except ImportError_ as e:
            raise ImportError_(f"{tasks_p}: {e}") from None
    seen = Counter(i["id"] for i in instances)
    dup = [k for k, v in seen.items() if v > 1]
    if dup:
        raise ImportError_(f"{tasks_p}: idx repeated ({dup[0]}); rows need distinct idx values")
    splits: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for inst in instances:
        h = int(hashlib.sha256(f"{inst['task']}/{inst['metadata']['idx']}".encode()).hexdigest()[:8], 16)
        splits["train" if h / 0xFFFFFFFF < train_share else "test"].append(inst)
    splits["val"] = list(splits["test"])
    out_p.mkdir(parents=True, exist_ok=True)
    for s, recs in splits.items():
        write_text_atomic(out_p / f"{s}.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in recs))
        write_parquet(recs, out_p / f"{s}.parquet")
    manifest = {
        "format": SUITE_FORMAT, "source": SOURCE,
        "sha256": {f"{s}.{ext}": sha256_file(out_p / f"{s}.{ext}") for s in SPLITS for ext in ("jsonl", "parquet")}, "split_name": name, "train_share": train_share,
        "tasks_file": {"path": str(tasks_p.resolve()), "sha256": sha256_file(tasks_p)},
        "org_file": {"path": str(org_p.resolve()), "sha256": sha256_file(org_p)},
        "counts": {s: dict(sorted(Counter(r["task"] for r in recs).items())) for s, recs in splits.items()},
        "benchmark_skills": {t: BENCHMARK_SKILLS[t] for t in sorted({i["task"] for i in instances})},
        "agentic": True,
    }
    write_json_atomic(out_p / MANIFEST_FILE, manifest)
    return manifest


def check_org_file(path: str | Path) -> None:
    """Refuse an org file that is not SQLite or fails SQLite's ``PRAGMA integrity_check``
    (``ImportError_`` naming the file and the first faults); opened with ``trusted_schema = OFF``."""
    p = Path(path)
    try:
        conn = open_untrusted(p)
    except (ValueError, FileNotFoundError) as e:
        raise ImportError_(str(e)) from None
    try:
        faults = [str(r[0]) for r in conn.execute("PRAGMA integrity_check(5)")]
    except sqlite3.DatabaseError as e:
        faults = [str(e)]
    finally:
        conn.close()
    if faults != ["ok"]:
        raise ImportError_(f"{p} fails SQLite's integrity check ({'; '.join(faults).replace(chr(10), ' ')[:300]}): the file is damaged "
                           f"or was altered; fetch the benchmark's org file again")
