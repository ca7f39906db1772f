"""``seccrm export verl``: a built suite as Parquet files in VERL's RL dataset layout.

One row per task instance, with the columns VERL's ``RLHFDataset`` and reward managers read::

    data_source   "seccrm/<task>"              VERL groups validation metrics by it: one group per task
    prompt        [{role, content}, ...]       the instance's chat messages; VERL applies the chat template
    ability       "<SKILL>"                    CRUD / ANALYTICS / KNOWLEDGE / POLICY
    reward_model  {style: "rule", ground_truth: JSON list of the gold answer strings}
    extra_info    {index, split, instance_id, task, skill, difficulty, arm, org_path, instance}

``extra_info.instance`` is the whole instance record as ``build`` wrote it (JSON), so that
:func:`seccrm.integrations.verl.reward.compute_score` grades a completion from the row alone, exactly
as ``seccrm.world.rewards.score`` does in ``seccrm train``. ``extra_info.arm`` is what the SEC sampler
reads; ``extra_info.index`` is the row's position, which VERL copies into ``batch["index"]``.

CRUD rewards replay the answer on a scratch copy of the org, so they need the org file: the export
copies ``org.sqlite`` next to the Parquet files and records its absolute path in ``org_path``. When
the files will live elsewhere on the training cluster, pass ``--org-path`` (the path there), or set
``reward_kwargs.org_path`` / ``SECCRM_ORG`` at training time (see the reward module).

The files are deterministic: same suite, same bytes.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from seccrm.data import load_split

DATA_SOURCE_PREFIX = "seccrm/"
SPLIT_FILES: dict[str, str] = {"train": "train.parquet", "val": "val.parquet", "test": "test.parquet"}
ORG_FILE = "org.sqlite"
MANIFEST_FILE = "verl_export.json"


def data_source(task: str) -> str:
    """``"quote_approval" -> "seccrm/quote_approval"``."""
    return DATA_SOURCE_PREFIX + task


def verl_row(record: dict[str, Any], index: int, split: str, org_path: str) -> dict[str, Any]:
    """One instance record (as ``seccrm.data.load_split`` returns it) as one VERL dataset row.

    ``metadata.org_path`` is dropped from the stored instance: it is an absolute path of the machine
    that loaded the suite; the row's own ``extra_info.org_path`` says where the org is.
    """
    instance = dict(record)
    meta = dict(instance.get("metadata") or {})
    meta.pop("org_path", None)
    instance["metadata"] = meta
    return {
        "data_source": data_source(record["task"]),
        "prompt": [{"role": m["role"], "content": m["content"]} for m in record["messages"]],
        "ability": record["skill"],
        "reward_model": {"style": "rule", "ground_truth": json.dumps(record["answer"], ensure_ascii=False)},
        "extra_info": {
            "index": index,
            "split": split,
            "instance_id": record["id"],
            "task": record["task"],
            "skill": record["skill"],
            "difficulty": record["difficulty"],
            "arm": record["arm"],
            "org_path": org_path,
            "instance": json.dumps(instance, sort_keys=True, ensure_ascii=False),
        },
    }


def _org_file(src: Path) -> Path:
    """The suite's org: ``org.sqlite`` of a built suite, or the file an imported suite names in suite.json."""
    if (src / ORG_FILE).is_file():
        return src / ORG_FILE
    try:
        named = json.loads((src / "suite.json").read_text(encoding="utf-8")).get("org_file", {}).get("path")
    except (OSError, ValueError, AttributeError):
        named = None
    if named and Path(named).is_file():
        return Path(named)
    raise FileNotFoundError(f"{src / ORG_FILE} not found; build the suite first: seccrm build --out {src}"
                            + (f" (suite.json names {named}, which is missing)" if named else ""))


def _schema() -> Any:
    """The Parquet schema: fixed so that every split (and every export) has the same column types."""
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    extra = pa.struct([("index", pa.int64()), ("split", pa.string()), ("instance_id", pa.string()),
                       ("task", pa.string()), ("skill", pa.string()), ("difficulty", pa.string()),
                       ("arm", pa.string()), ("org_path", pa.string()), ("instance", pa.string())])
    return pa.schema([("data_source", pa.string()), ("prompt", pa.list_(message)), ("ability", pa.string()),
                      ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
                      ("extra_info", extra)])


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    """Write rows with the fixed schema (an empty split still gets a valid, empty file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _schema()
    table = pa.Table.from_pylist(rows, schema=schema) if rows else schema.empty_table()
    pq.write_table(table, path, compression="zstd")


def export_verl(data_dir: str | Path, out_dir: str | Path, org_path: str | None = None) -> dict[str, Any]:
    """Export the suite in ``data_dir`` (built by ``seccrm build``) to VERL Parquet files in ``out_dir``.

    Args:
        data_dir: a suite directory (``org.sqlite``, ``train/val/test.jsonl``).
        out_dir: where ``train.parquet``, ``val.parquet``, ``test.parquet``, a copy of the org and
            ``verl_export.json`` (counts, paths) are written.
        org_path: the org path to record in every row; default: the absolute path of the copy.

    Returns:
        The manifest written to ``verl_export.json``.
    """

    src, out = Path(data_dir), Path(out_dir)
    org_src = _org_file(src)
    out.mkdir(parents=True, exist_ok=True)
    org_copy = out / ORG_FILE
    if org_src.resolve() != org_copy.resolve():
        shutil.copyfile(org_src, org_copy)
    recorded_org = org_path or str(org_copy.resolve())
    manifest: dict[str, Any] = {"source": str(src.resolve()), "org_path": recorded_org, "splits": {}}
    for split, name in SPLIT_FILES.items():
        records = load_split(src, split)
        rows = [verl_row(r, i, split, recorded_org) for i, r in enumerate(records)]
        write_rows(rows, out / name)
        manifest["splits"][split] = {"file": name, "rows": len(rows),
                                     "arms": dict(sorted(Counter(r["arm"] for r in records).items()))}
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------
