"""The command line a benchmark prints and stores with its results, written so that it names no folder of the
machine it ran on: an absolute path inside the checkout becomes relative to it (the scripts run from its root)."""

from __future__ import annotations

import os
import shlex

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def checkout_relative(arg: str) -> str:
    if os.path.isabs(arg) and os.path.commonpath([ROOT, os.path.abspath(arg)]) == ROOT:
        return os.path.relpath(arg, ROOT)
    return arg


def recorded_command(script: str, argv: list[str], prefix: str = "") -> str:
    """`prefix python scripts/SCRIPT ARGS`, each path argument (and the value of --flag=PATH) checkout-relative."""
    def one(arg: str) -> str:
        if arg.startswith("--") and "=" in arg:
            flag, value = arg.split("=", 1)
            return f"{flag}={checkout_relative(value)}"
        return checkout_relative(arg)

    words = [prefix] if prefix else []
    return " ".join(words + ["python", f"scripts/{script}"] + [shlex.quote(one(a)) for a in argv])
