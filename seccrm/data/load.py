"""Reading a built suite: its manifest, the sha256 check of its files, and the records of a split.

``load_split`` checks the split's and the org's sha256 against ``suite.json`` (once per file version
in a process, ``verify_suite_files``) and refuses a suite whose files do not match, or that has no
``suite.json`` (a build that did not finish); ``suite_manifest`` refuses a format newer than
``SUITE_FORMAT``. The names of a suite's files (``SPLITS``, ``ORG_FILE``, ``MANIFEST_FILE``) live here,
and ``seccrm.data.build`` writes what this module reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from seccrm.data.schema import check_rows
from seccrm.files import read_jsonl, sha256_file
from seccrm.world.rewards import attach_org

SPLITS: tuple[str, ...] = ("train", "val", "test")
ORG_FILE = "org.sqlite"
AGENT_ORG_FILE = "agent_org.sqlite"   # what agentic episodes query (seccrm.world.agent_org)
MANIFEST_FILE = "suite.json"
SUITE_FORMAT = 2   # 1: suites written before the format was recorded (same rows); 2: adds "format"


_VERIFIED: set[tuple[str, int, int, str]] = set()


def suite_mode(data_dir: str | Path) -> str:
    """'agentic' for a suite of question-only instances (``--mode agentic`` builds, imports), else 'single'."""
    manifest = Path(data_dir) / MANIFEST_FILE
    try:
        return "agentic" if json.loads(manifest.read_text(encoding="utf-8")).get("agentic") else "single"
    except (OSError, ValueError, AttributeError):
        return "single"


def suite_manifest(data_dir: str | Path) -> dict[str, Any]:
    """``suite.json`` of a suite folder; ValueError when it is missing, unreadable or of a newer format."""
    d = Path(data_dir)
    path = d / MANIFEST_FILE
    if not path.is_file():
        raise ValueError(f"{d} has no {MANIFEST_FILE}: its build did not finish, or it is not a suite; "
                         f"rebuild it with `seccrm build --out {d}`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is unreadable ({e}); rebuild the suite with `seccrm build --out {d}`") from None
    fmt = manifest.get("format", 1) if isinstance(manifest, dict) else None
    if not isinstance(fmt, int) or fmt > SUITE_FORMAT:
        raise ValueError(f"{path}: suite format {fmt!r}, but this seccrm reads formats 1-{SUITE_FORMAT}: "
                         f"upgrade seccrm or rebuild the suite")
    return manifest


def verify_suite_files(data_dir: str | Path, names: list[str]) -> None:
    """Check ``names`` (and the org) against the sha256 that ``suite.json`` records; ValueError naming
    the first file that differs. Each file version is hashed once per process."""
    d = Path(data_dir)
    manifest = suite_manifest(d)
    recorded = dict(manifest.get("sha256") or {})
    org = manifest.get("org_file")            # an imported suite: the user's org, kept where it is
    paths = {n: d / n for n in [*names, ORG_FILE] if n in recorded}
    if isinstance(org, dict) and org.get("path") and org.get("sha256"):
        recorded[org["path"]] = org["sha256"]
        paths[org["path"]] = Path(org["path"])
    for name, p in paths.items():
        try:
            st = p.stat()
        except OSError:
            raise ValueError(f"{p} is missing from the suite in {d}; rebuild it with `seccrm build --out {d}`") from None
        key = (str(p.resolve()), st.st_size, st.st_mtime_ns, recorded[name])
        if key in _VERIFIED:
            continue
        if sha256_file(p) != recorded[name]:
            raise ValueError(f"{p} does not match {d / MANIFEST_FILE} (sha256 differs): the suite is mixed "
                             f"(an interrupted build, or a file changed by hand); rebuild it with "
                             f"`seccrm build --out {d}`")
        _VERIFIED.add(key)


def load_split(data_dir: str | Path, split: str) -> list[dict[str, Any]]:
    """The records of one split (``train``, ``val`` or ``test``) of a built suite.

    Records the org's absolute path in each record's ``metadata["org_path"]`` (in memory only), so
    that ``seccrm.world.rewards.score`` finds the org of these records from any working directory.
    """

    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    d = Path(data_dir)
    path = d / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; build the suite with `seccrm build --out {d}`")
    verify_suite_files(d, [f"{split}.jsonl"])
    records = read_jsonl(path)
    check_rows(path, records, "instance")
    return attach_org(records, d)
