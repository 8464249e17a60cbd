"""Checkpoints on the Hugging Face Hub: ``hf://ORG/NAME@REVISION`` wherever a path is accepted.

Large public training trajectories (Pythia, OLMo, ...) are Hub revisions of one
model repository (``step1000``, ``step2000``, ...). A Hub path is resolved
through ``huggingface_hub`` into its local cache, fetching only the weights
(safetensors before pickles, as transformers does; every shard of a sharded
model) and then read like a model folder:

- ``hf://ORG/NAME@REVISION``: one checkpoint, the weights at that branch, tag or commit;
- ``hf://ORG/NAME``: the ``main`` revision;
- ``hf://ORG/NAME@step*``: every branch and tag matching the pattern
  (``fnmatch``), in natural order (``step2000`` before ``step10000``): a run.

With ``HF_HUB_OFFLINE=1`` nothing is downloaded: revisions and files come from
the cache alone (``HF_HUB_CACHE``), and a missing one is an error naming it.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from pathlib import Path

PREFIX = "hf://"
_REPO = re.compile(r"[\w.\-]+/[\w.\-]+")


def is_hub_path(given: object) -> bool:
    """Whether ``given`` is an ``hf://`` path (a string; ``Path`` would fold its ``//``)."""
    return isinstance(given, str) and given.startswith(PREFIX)


def parse(given: str) -> tuple[str, str | None]:
    """``"hf://ORG/NAME@REV"`` -> ``("ORG/NAME", "REV")``; the revision is None when absent."""
    body = given[len(PREFIX) :]
    repo_id, _, revision = body.partition("@")
    repo_id = repo_id.rstrip("/")
    if not _REPO.fullmatch(repo_id):
        raise ValueError(
            f"{given}: a Hub path is hf://ORG/NAME or hf://ORG/NAME@REVISION (e.g. "
            "hf://EleutherAI/pythia-70m@step1000)."
        )
    if "@" in body and not revision:
        raise ValueError(f"{given}: empty revision after '@'.")
    return repo_id, revision or None


def at_revisions(given: object, revisions) -> list[str]:
    """One ``hf://ORG/NAME@REV`` path per revision (``wtraj.open(path, revisions=[...])``)."""
    if not is_hub_path(given):
        raise ValueError(f"revisions= needs one hf://ORG/NAME path; got paths={given!r}.")
    repo_id, revision = parse(given)
    if revision is not None:
        raise ValueError(f"{given}: give the revision either in the path or in revisions=, not both.")
    if isinstance(revisions, str):
        revisions = [revisions]
    revisions = list(revisions)
    if not revisions or not all(isinstance(r, str) and r for r in revisions):
        raise ValueError(f"revisions must be a non-empty list of revision names; got {revisions!r}.")
    return [f"{PREFIX}{repo_id}@{r}" for r in revisions]


def discover(given: str) -> list:
    """The checkpoints a Hub path stands for, each resolved to a weights file in the local cache."""
    from wtraj.checkpoints.discovery import CheckpointLocation

    repo_id, revision = parse(given)
    revision = revision or "main"
    if any(c in revision for c in "*?["):
        revisions = revisions_matching(repo_id, revision)
        if not revisions:
            raise ValueError(f"{given}: no branch or tag of {repo_id} matches {revision!r}.")
    else:
        revisions = [revision]
    # the cache's snapshot files link to the repository's blobs folder beside them
    return [
        CheckpointLocation(f"{repo_id}@{r}", found, shard_root=found.parent.parent.parent)
        for r in revisions
        for found in [weights_file(repo_id, r)]
    ]


def revisions_matching(repo_id: str, pattern: str) -> list[str]:
    """Branches and tags of ``repo_id`` matching ``pattern``, in natural order."""
    from wtraj.checkpoints.discovery import natural_key

    hub = _hub()
    if _offline():
        refs = (
            Path(hub.constants.HF_HUB_CACHE)
            / hub.file_download.repo_folder_name(repo_id=repo_id, repo_type="model")
            / "refs"
        )
        if not refs.is_dir():
            raise FileNotFoundError(
                f"hf://{repo_id}: not in the Hugging Face cache {refs.parent.parent} "
                "and HF_HUB_OFFLINE is set."
            )
        names = [p.relative_to(refs).as_posix() for p in refs.rglob("*") if p.is_file()]
    else:
        refs = hub.HfApi().list_repo_refs(repo_id)
        names = [ref.name for ref in [*refs.branches, *refs.tags]]
    return sorted((n for n in names if fnmatch.fnmatchcase(n, pattern)), key=natural_key)


def weights_file(repo_id: str, revision: str) -> Path:
    """The weights file (or shard index) of ``repo_id`` at ``revision`` in the cache, fetched if needed."""
    from wtraj.checkpoints.discovery import MODEL_FILE_NAMES, model_file_of

    hub = _hub()
    label = f"hf://{repo_id}@{revision}"
    try:
        if _offline():
            folder = Path(hub.snapshot_download(repo_id, revision=revision, local_files_only=True))
        else:
            folder = _fetch_weights(hub, repo_id, revision)
    except hub.errors.RevisionNotFoundError as error:
        raise FileNotFoundError(f"{label}: no such revision of {repo_id}.") from error
    except hub.errors.RepositoryNotFoundError as error:
        raise FileNotFoundError(f"{label}: no such model repository (or it is private).") from error
    except hub.errors.LocalEntryNotFoundError as error:
        raise FileNotFoundError(
            f"{label}: not in the Hugging Face cache ({hub.constants.HF_HUB_CACHE}) and downloads are "
            "off (HF_HUB_OFFLINE); fetch it once online."
        ) from error
    found = model_file_of(folder)
    if found is None:
        raise ValueError(
            f"{label}: the revision holds no model weights (looked for {', '.join(MODEL_FILE_NAMES)})."
        )
    _check_shards(found, label)
    return found


def _fetch_weights(hub, repo_id: str, revision: str) -> Path:
    """Download the preferred weights of one revision (every shard of an index), nothing else."""
    from wtraj.checkpoints.discovery import MODEL_FILE_NAMES

    files = set(hub.HfApi().list_repo_files(repo_id, revision=revision))
    chosen = next((name for name in MODEL_FILE_NAMES if name in files), None)
    if chosen is None:
        raise ValueError(
            f"hf://{repo_id}@{revision}: the revision holds no model weights at its top level "
            f"(looked for {', '.join(MODEL_FILE_NAMES)})."
        )
    patterns = [chosen]
    if chosen.endswith(".index.json"):
        index = hub.hf_hub_download(repo_id, chosen, revision=revision)
        patterns += sorted(set(json.loads(Path(index).read_text())["weight_map"].values()))
    return Path(hub.snapshot_download(repo_id, revision=revision, allow_patterns=patterns))


def _check_shards(found: Path, label: str) -> None:
    """A cached shard index whose shards are not all cached names the missing shard."""
    if not found.name.endswith(".index.json"):
        return
    shards = set(json.loads(found.read_text())["weight_map"].values())
    missing = sorted(s for s in shards if not (found.parent / s).exists())
    if missing:
        raise FileNotFoundError(f"{label}: shard {missing[0]} of {found.name} is not in the cache.")


def _offline() -> bool:
    hub = _hub()
    return bool(hub.constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in (
        "1",
        "ON",
        "YES",
        "TRUE",
    )


def _hub():
    try:
        import huggingface_hub
        import huggingface_hub.constants
        import huggingface_hub.errors
        import huggingface_hub.file_download
    except ImportError as error:
        raise ImportError(
            'hf:// paths need huggingface_hub: pip install "wtraj[hf]" (or "wtraj[all]").'
        ) from error
    return huggingface_hub
