"""The int8 format for `bertlite.load_compressed` (registered in bertlite/hub/formats.py)."""

from __future__ import annotations

from ..errors import BertliteError
from .serialization import load_quantized as _load_quantized

# Keyword arguments load_compressed may pass on that mean something for an int8 folder.
_OPTIONS = ("backend", "compile", "threads")


def load_quantized(folder, *, trust_remote_code: bool = False, **model_kwargs):
    """Loader called as `load(folder: ModelFolder, *, trust_remote_code, **model_kwargs)`. int8 models are built
    from transformers/bertlite classes only, so trust_remote_code plays no part; a float dtype cannot apply."""
    dtype = model_kwargs.pop("torch_dtype", None) or model_kwargs.pop("dtype", None)
    if dtype not in (None, "auto", "float32") and str(dtype) != "torch.float32":
        raise BertliteError(f"{folder.path!r} holds an int8 model: torch_dtype={dtype} cannot apply to it.")
    unknown = sorted(set(model_kwargs) - set(_OPTIONS))
    if unknown:
        raise BertliteError(f"Options {', '.join(unknown)} do not apply to int8 models; these do: {', '.join(_OPTIONS)}.")
    return _load_quantized(folder.path, **model_kwargs)
