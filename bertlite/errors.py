"""Errors bertlite raises for bad input. The CLI prints their message without a traceback."""


class BertliteError(ValueError):
    """A problem the user can fix; the message says how."""


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_model(model, name: str = "model", *, needs_config: bool = True) -> None:
    """The entry guard of public functions taking a model: a wrong type is one clear error here, not an
    AttributeError deep inside. `needs_config`: a Transformers model (with `.config`), not any torch module."""
    import torch

    if not isinstance(model, torch.nn.Module) or needs_config and getattr(model, "config", None) is None:
        kind = "a Transformers model" if needs_config else "a torch model"
        raise BertliteError(f"{name} must be {kind} (e.g. bertlite.load_model(PATH)), got {type(model).__name__} {_shown(model)}.")


def check_path(value, name: str = "path") -> str:
    """The entry guard of public functions taking a folder or Hub id: a str or os.PathLike."""
    import os

    if not isinstance(value, (str, os.PathLike)) or not str(os.fspath(value)).strip():
        raise BertliteError(f"{name} must be a folder or Hub id given as a string, got {type(value).__name__} {_shown(value)}.")
    return os.fspath(value)
