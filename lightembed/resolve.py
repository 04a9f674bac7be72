"""Turn a model name into a folder on disk: the bundled default, a local path, or a Hub repository."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import ModelNotFoundError
from .folder import FOLDER_FILES

DEFAULT_MODEL = "default"
_PACKAGE_DIR = Path(__file__).resolve().parent
# In a wheel the bundled models sit inside the package; in a source checkout at the repository root.
_WEIGHTS_DIRS = (_PACKAGE_DIR / "weights", _PACKAGE_DIR.parent / "weights")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def bundled_model_path() -> Path:
    """The folder of the default model shipped inside the package; never touches the network."""
    for weights in _WEIGHTS_DIRS:
        candidate = weights / DEFAULT_MODEL
        if (candidate / "config.json").is_file():
            return candidate
    raise ModelNotFoundError(
        f"bundled model {DEFAULT_MODEL!r} is not installed (looked in {', '.join(map(str, _WEIGHTS_DIRS))})"
    )


def resolve_model(
    name: str | os.PathLike[str] | None = None,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
) -> Path:
    """Find the folder (or codebook file) for `name`.

    None or "default" gives the bundled model; an existing path is used as it is; a name of
    the form `owner/repo` is fetched from the Hugging Face Hub into its standard cache (only
    the model-folder files), or taken from that cache when offline.
    """
    if name is not None and not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"the model name must be a str or a path (a folder, file or Hub id), got {type(name).__name__}")
    if name is not None and not str(name).strip():
        raise ModelNotFoundError("empty model name (give None or 'default' for the bundled model)")
    if revision is not None and not str(revision).strip():
        raise ValueError(
            f"revision {revision!r} is empty or blank: give a Hub branch, tag or commit, "
            "or no revision for the default branch"
        )
    local = name is None or name == DEFAULT_MODEL or Path(name).expanduser().exists()
    if local and revision is not None:
        raise ValueError(
            f"revision {revision!r} applies to Hub repositories (owner/name), not to {name or DEFAULT_MODEL!r}"
        )
    if name is None or name == DEFAULT_MODEL:
        return bundled_model_path()
    path = Path(name).expanduser()
    if path.exists():
        return path
    text = str(name)
    if not _REPO_ID.match(text):
        raise ModelNotFoundError(f"{text}: no such file or folder, and not a Hub repository id (owner/name)")
    return _download(text, revision=revision, cache_dir=cache_dir, offline=offline)


def _download(
    repo_id: str,
    *,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    offline: bool | None,
) -> Path:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    offline_reason = "offline=True"
    if offline is None:
        offline = constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}
        offline_reason = "HF_HUB_OFFLINE is set"
    patterns = [*FOLDER_FILES, "*.safetensors", "*tokenizer*.json", "tokenizers/*.json"]
    if not offline and revision is not None and _COMMIT.match(revision):
        try:  # a commit never changes: a cached snapshot of it needs no network
            return Path(str(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=True)))
        except LocalEntryNotFoundError:
            unreachable = _no_answer_from_hub(repo_id, revision)
            if unreachable is not None:  # fail now: the file listing that follows retries for about 20 s
                raise ModelNotFoundError(
                    f"{repo_id} at revision {revision!r}: not in the local Hugging Face cache and the Hub "
                    f"could not be reached ({unreachable}); download it once with network access, or pass a local folder"
                ) from None
    try:
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache_dir,
            allow_patterns=patterns,
            local_files_only=offline,
        )
    except LocalEntryNotFoundError:
        where = f"offline ({offline_reason})" if offline else "the Hub could not be reached"
        at = f" at revision {revision!r}" if revision else ""
        raise ModelNotFoundError(
            f"{repo_id}{at}: not in the local Hugging Face cache and {where}; "
            "download it once with network access, or pass a local folder"
        ) from None
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise ModelNotFoundError(f"{repo_id}: could not be fetched from the Hugging Face Hub ({exc})") from None
    return Path(str(folder))


def _no_answer_from_hub(repo_id: str, revision: str) -> Exception | None:
    """The error of one quick request to the Hub when it gave no answer at all, else None."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        HfApi().repo_info(repo_id, revision=revision)
    except HfHubHTTPError:
        return None  # the Hub answered (not found, no access, ...): snapshot_download reports it
    except Exception as exc:  # the HTTP client's connection or timeout error; its class depends on the hub version
        return exc
    return None
