"""Registering `model_type: "bertlite"` with transformers' Auto classes at `import bertlite`, without importing torch.

`import bertlite` must stay cheap (the CLI starts at once, and OMP settings must be made before torch loads), but a
pruned folder must load with `AutoModelForSequenceClassification.from_pretrained(path)` once bertlite is imported.
Registering needs the config and model classes, hence torch and transformers' BERT code. So registration waits until
transformers' Auto machinery is loaded anyway:

* if `AutoConfig` is already loaded, register now;
* otherwise a meta-path finder watches the modules that transformers (and bertlite's own class modules) import and
  registers after the first one that completes once `AutoConfig` exists -- but never while another of those modules
  is still half-imported: importing BERT classes in the middle of transformers' own import chain would be circular.
  Once registration is done the finder removes itself.

Only the standard library is imported here.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
import warnings

CONFIG_MODULE = "transformers.models.auto.configuration_auto"
_PACKAGE = __package__  # "bertlite.structured"
# Modules whose half-imported state makes registering unsafe, and whose completion is a chance to register.
_WATCHED_PREFIXES = ("transformers.", f"{_PACKAGE}.configuration_bertlite", f"{_PACKAGE}.modeling_bertlite",
                     f"{_PACKAGE}.registration")


def _watched(name: str) -> bool:
    return name == "transformers" or name.startswith(_WATCHED_PREFIXES)


def _initializing(name: str, module) -> bool:
    spec = getattr(module, "__spec__", None)
    return bool(getattr(spec, "_initializing", False)) and _watched(name)


def _safe_to_register(just_completed: str | None = None) -> bool:
    if getattr(sys.modules.get(CONFIG_MODULE), "AutoConfig", None) is None:
        return False  # transformers' Auto classes are not in use yet
    return not any(_initializing(name, module) for name, module in list(sys.modules.items()) if name != just_completed)


def _register() -> None:
    # Importing the registration module registers every Bertlite class (it does so at the end of its own import).
    importlib.import_module(f"{_PACKAGE}.registration")


class _CallbackLoader(importlib.abc.Loader):
    """Wraps a module's loader to run `callback(name)` once the module has executed; everything else is delegated."""

    def __init__(self, inner, name: str, callback):
        self._inner, self._name, self._callback = inner, name, callback

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module):
        self._inner.exec_module(module)
        self._callback(self._name)

    def __getattr__(self, name):
        return getattr(self._inner, name)


class _RegisterWhenSafe(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if not _watched(fullname):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None:
            spec.loader = _CallbackLoader(spec.loader, fullname, self.module_completed)
        return spec

    def module_completed(self, name: str) -> None:
        if self in sys.meta_path and _safe_to_register(just_completed=name):
            sys.meta_path.remove(self)
            _run(_register)


def _run(callback) -> None:
    # A failure here must not break the user's import of transformers: only loading bertlite folders is affected.
    try:
        callback()
    except Exception as err:  # noqa: BLE001
        warnings.warn(f"bertlite could not register its 'bertlite' model type with transformers' Auto classes ({err!r}); "
                      "pruned folders then load only with trust_remote_code=True.", stacklevel=2)


def install() -> None:
    if any(isinstance(finder, _RegisterWhenSafe) for finder in sys.meta_path):
        return
    if _safe_to_register():
        _run(_register)
    else:
        sys.meta_path.insert(0, _RegisterWhenSafe())


install()
