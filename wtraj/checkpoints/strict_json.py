"""JSON from checkpoint files, parsed as strictly as the formats' own readers do."""

from __future__ import annotations

import json
from pathlib import Path


def parse_json_object(path: Path, raw: bytes, what: str) -> dict:
    """Parse ``raw`` (UTF-8) as a JSON object whose objects have no duplicate keys.

    Raises
    ------
    ValueError
        Naming ``path`` and ``what`` if it is not UTF-8, not JSON, nested too
        deeply, not an object, or repeats a key.
    """
    try:
        parsed = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: corrupted file: {what} is not valid JSON ({exc}).") from exc
    except RecursionError as exc:
        raise ValueError(f"{path}: corrupted file: {what} is JSON nested too deeply to read.") from exc
    except _DuplicateKey as exc:
        raise ValueError(f"{path}: corrupted file: {what} repeats the key {exc.args[0]!r}.") from exc
    if not isinstance(parsed, dict):
        raise ValueError(f"{path}: corrupted file: {what} is not a JSON object.")
    return parsed


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        raise _DuplicateKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return obj
