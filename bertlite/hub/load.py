"""Loading a bertlite model back, from a local folder or a Hub repo id, with the classes its compression needs."""

from __future__ import annotations

import os

from ..record import CONFIG_NAME as COMPRESSION_CONFIG_NAME
from ..record import CompressionConfig
from ..errors import BertliteError
from .errors import hub_errors
from .timeouts import hub_calls
from .folder import DOWNLOAD_PATTERNS, PICKLE_PATTERNS, ModelFolder
from .formats import extra_file_patterns, select_format
from .push import REPO_ID


def download_compressed(repo_id: str, *, revision: str | None = None, token: str | bool | None = None,
                        endpoint: str | None = None, cache_dir: str | None = None) -> str:
    """Download a bertlite repo (safetensors only, never pickles) into the Hub cache; returns the local folder."""
    from huggingface_hub import get_token, hf_hub_download, snapshot_download

    if not REPO_ID.match(repo_id) or "/" not in repo_id:
        raise BertliteError(f"{repo_id!r} is neither an existing folder nor a Hub repo id (ORG/NAME).")
    has_token = bool(token) if token is not None else bool(get_token())
    common = dict(revision=revision, token=token, endpoint=endpoint, cache_dir=cache_dir)
    with hub_calls(push=False), hub_errors(repo_id, revision=revision, has_token=has_token, action="read"):
        from huggingface_hub.errors import RemoteEntryNotFoundError

        # The small compression record first: it checks access, revision and "made by bertlite" before any weights.
        try:
            hf_hub_download(repo_id, COMPRESSION_CONFIG_NAME, **common)
        except RemoteEntryNotFoundError as err:
            raise BertliteError(
                f"{repo_id!r} was not made by bertlite (no {COMPRESSION_CONFIG_NAME} at revision {revision or 'main'}): "
                "load it with Transformers' `from_pretrained`."
            ) from err
        return snapshot_download(repo_id, allow_patterns=[*DOWNLOAD_PATTERNS, *extra_file_patterns()],
                                 ignore_patterns=list(PICKLE_PATTERNS), **common)


def load_compressed(name_or_path: str, revision: str | None = None, token: str | bool | None = None, *,
                    trust_remote_code: bool = False, return_tokenizer: bool = False, endpoint: str | None = None,
                    cache_dir: str | None = None, **model_kwargs):
    """Load a model made by bertlite from a folder or a Hub repo id ("org/name"), restoring the classes its
    compression steps need (int8 modules, pruned layers...) through the format registry. A local folder that
    bertlite did not write (any saved Transformers model) loads too, with an empty compression history.

    token: for private repos; defaults to HF_TOKEN / `hf auth login`; False sends none. trust_remote_code: only
    for models whose code bertlite does not ship. return_tokenizer: return (model, tokenizer). model_kwargs go to
    the loader (e.g. torch_dtype). The model gets a `compression_config` attribute with its history.
    """
    if not isinstance(name_or_path, (str, os.PathLike)) or not str(name_or_path).strip():
        raise BertliteError(f"load_compressed needs a folder or a Hub repo id (ORG/NAME) as a string, got {name_or_path!r}.")
    name_or_path = os.fspath(name_or_path)
    if os.path.isdir(name_or_path):
        if revision is not None:
            raise BertliteError(f"revision={revision!r} applies to Hub repos, but {name_or_path!r} is a local folder.")
        local = name_or_path
    else:
        if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
            raise BertliteError(f"The folder {name_or_path!r} does not exist.")
        local = download_compressed(name_or_path, revision=revision, token=token, endpoint=endpoint,
                                    cache_dir=cache_dir)
    folder = ModelFolder.inspect(local)
    # A plain Transformers folder (e.g. a fine-tuned teacher) loads too, with an empty compression history.
    compression = folder.compression or CompressionConfig()
    fmt = select_format(folder)
    model = fmt.loader()(folder, trust_remote_code=trust_remote_code, **model_kwargs)
    model.compression_config = compression
    if return_tokenizer:
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(local, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as err:
            raise BertliteError(f"{name_or_path!r} has no usable tokenizer: {err}") from err
        return model, tokenizer
    return model
