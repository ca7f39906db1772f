"""Small file helpers every layer shares: JSONL reading and atomic writes.

An atomic write goes to a temporary file next to the target, is flushed to disk, and is renamed
over the target (``os.replace``): a killed process leaves the old file or the new one, never half.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any


def read_jsonl(path: str | os.PathLike[str], skip_torn_tail: bool = False) -> list[dict[str, Any]]:
    """Records of a JSONL file (blank lines ignored). A line that is not JSON raises ValueError naming
    the file and line, except, with ``skip_torn_tail``, the last line of a log that a killed writer
    left half written, which is dropped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    records = []
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if skip_torn_tail and n == last:
                break
            raise ValueError(f"{path} line {n + 1}: not valid JSON ({e.msg})") from None
        if not isinstance(records[-1], dict):
            raise ValueError(f"{path} line {n + 1}: expected a JSON object, got {type(records[-1]).__name__}")
    return records


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 4 MiB blocks (about 1 GB/s on one core)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json_atomic(path: str | os.PathLike[str], obj: Any, indent: int | None = 1) -> Path:
    """``obj`` as JSON at ``path``, written atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=indent))


def write_folder_atomic(target: str | os.PathLike[str], write: Callable[[Path], object], fsync: bool = False,
                        tmp: str | os.PathLike[str] | None = None) -> Path:
    """Create folder ``target`` by ``write(tmp)`` into a temporary folder beside it, then rename it over
    ``target`` (an older ``target`` is removed first): a reader sees the old folder or the finished new
    one, never half of one. On any error the temporary folder is removed and the error raised. With
    ``fsync``, every file is flushed to disk before the rename (checkpoints). ``tmp`` names the
    temporary folder (default ``.NAME.tmp-PID`` beside ``target``). Returns ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tmp) if tmp is not None else target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        os.chmod(tmp, 0o755)
        write(tmp)
        if fsync:
            for f in sorted(p for p in tmp.rglob("*") if p.is_file()):
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
