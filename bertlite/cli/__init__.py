"""`bertlite` command line: one entry point, one subcommand per job.

Each subcommand lives in its own module exposing `HELP` (one line), `DATACLASSES` (argument dataclasses whose
fields become flags through `HfArgumentParser`) and `run(*parsed_dataclasses)`. `--config recipe.yaml` supplies
values for the same fields; flags given on the command line override the file.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import BertliteError

COMMANDS = {
    "distill": "bertlite.cli.distill",
    "prune": "bertlite.cli.prune",
    "quantize": "bertlite.cli.quantize",
    "push": "bertlite.cli.push",
    "augment": "bertlite.cli.augment",
    "benchmark": "bertlite.cli.benchmark",
    "compress": "bertlite.cli.compress",
}
# Commands that train. OpenMP's default spin-waiting made training steps 3-9x slower on small shared CPU machines,
# and passive waiting costs nothing measurable when the machine is idle; but it slows batch-1 serving, so it is
# set for these commands only, before their module (and so torch) is imported, and never on `import bertlite`.
TRAINING_COMMANDS = ("distill", "prune", "augment", "compress")


def prefer_passive_openmp() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def load_recipe(path: str) -> dict:
    import yaml

    if not os.path.isfile(path):
        raise BertliteError(f"The recipe file {path!r} does not exist.")
    with open(path) as f:
        try:
            values = yaml.safe_load(f) or {}
        except yaml.YAMLError as err:
            raise BertliteError(f"The recipe {path!r} is not valid YAML: {' '.join(str(err).split())}") from err
    if not isinstance(values, dict):
        raise BertliteError(f"The recipe {path!r} must be a mapping of option names to values.")
    return {key.replace("-", "_"): value for key, value in values.items()}


def _expected(kind) -> str:
    return {int: "a whole number", float: "a number", str: "a string"}.get(kind, "true or false")


def _check_scalar(path: str, key: str, value, action):
    """One recipe value against the type and choices its flag has on the command line."""
    kind = action.type
    if value is None:
        return None
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value  # `temperature: 3` is the 3.0 that --temperature 3 gives
    elif kind in (None, str):
        ok = isinstance(value, (str, int, float)) and not isinstance(value, bool)
        value = str(value) if ok else value
    elif getattr(kind, "__name__", "") == "string_to_bool":
        ok = isinstance(value, bool)
    else:  # a converter of the command line's text (an enum, a choice): give it the text it would get there
        try:
            ok = not isinstance(value, (list, dict)) and kind(str(value)) is not None
        except (TypeError, ValueError):
            ok = False
    if not ok:
        expected = _expected(kind) if kind in (int, float, str, None) or getattr(kind, "__name__", "") == "string_to_bool" else "one value"
        choices = f" (one of {', '.join(map(str, action.choices))})" if action.choices else ""
        raise BertliteError(f"{path}: {key} must be {expected}{choices}, got {value!r}.")
    if action.choices and value not in action.choices and str(value) not in map(str, action.choices):
        raise BertliteError(f"{path}: {key} must be one of {', '.join(map(str, action.choices))}, got {value!r}.")
    return value


def check_recipe_value(path: str, key: str, value, action):
    """A recipe value of the wrong type stops with one line naming the key and the expected type (argparse would
    pass a YAML value through unconverted: `student_layers: 2.5` reached the model builder)."""
    if action.nargs in ("+", "*"):
        items = value if isinstance(value, list) else [value]
        return [_check_scalar(path, key, item, action) for item in items]
    if isinstance(value, (list, dict)):
        raise BertliteError(f"{path}: {key} takes one value, got {type(value).__name__} {value!r}.")
    return _check_scalar(path, key, value, action)


def build_parser(command: str):
    from transformers import HfArgumentParser

    module = importlib.import_module(COMMANDS[command])
    parser = HfArgumentParser(module.DATACLASSES, prog=f"bertlite {command}", description=module.HELP)
    parser.add_argument("--config", default=None, help="YAML recipe whose keys are this command's options; flags override it.")

    def one_line_error(message):  # argparse prints the whole usage first: one line says what is wrong instead
        raise BertliteError(f"{message}. See `bertlite {command} --help`.")

    parser.error = one_line_error
    return parser, module


def parse_command(command: str, argv: list[str]):
    """Parse argv for one command, merging `--config` values under the flags. Returns (module, dataclasses)."""
    parser, module = build_parser(command)
    # A command may take its main argument first, without its flag (`bertlite push DIR`): POSITIONAL names the field.
    positional = getattr(module, "POSITIONAL", None)
    if positional and argv and not argv[0].startswith("-"):
        argv = [f"--{positional}", argv[0], *argv[1:]]
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(argv)
    if known.config:
        recipe = load_recipe(known.config)
        dests = {action.dest for action in parser._actions}
        unknown = sorted(set(recipe) - dests)
        if unknown:
            raise BertliteError(f"Unknown option(s) in {known.config}: {', '.join(unknown)}. See `bertlite {command} --help`.")
        actions = {action.dest: action for action in parser._actions}
        recipe = {key: check_recipe_value(known.config, key, value, actions[key]) for key, value in recipe.items()}
        parser.set_defaults(**recipe)
        # A value given in the recipe satisfies a required flag.
        for action in parser._actions:
            if action.dest in recipe:
                action.required = False
    try:
        parsed = parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    except BertliteError:
        raise
    except ValueError as err:  # TrainingArguments' own __post_init__ checks (an unknown strategy name, ...)
        raise BertliteError(str(err)) from err
    # The trailing namespace holds --config only.
    return module, [p for p in parsed if not isinstance(p, argparse.Namespace)]


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `bertlite distill --help | head`: the reader left; not an error worth a traceback
        # Python flushes stdout again at exit: point it at /dev/null so that flush cannot fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports it


def _main(argv: list[str] | None) -> int:
    from .._quiet import install

    install()  # drop two known, harmless log lines of optional dependencies (see bertlite._quiet)
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = COMMANDS
    top = argparse.ArgumentParser(
        prog="bertlite",
        description="Make BERT models small and fast. Run `bertlite COMMAND --help` for a command's options.",
    )
    top.add_argument("command", choices=sorted(commands), help="; ".join(f"{name}" for name in commands))
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        print("\ncommands:")
        for name, mod in commands.items():
            print(f"  {name:10s} {importlib.import_module(mod).HELP}")
        return 0
    if argv[0] in ("-V", "--version"):
        from ..record import VERSION as __version__

        print(f"bertlite {__version__}")
        return 0
    if argv[0] not in commands:
        print(f"bertlite: error: unknown command {argv[0]!r}; choose from {', '.join(sorted(commands))}.", file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command in TRAINING_COMMANDS:
        prefer_passive_openmp()
    try:
        module, parsed = parse_command(command, rest)
        result = module.run(*parsed)
    except BertliteError as err:
        print(f"bertlite {command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nbertlite {command}: interrupted. Checkpoints already written stay in the output folder; "
              "run the same command again to resume.", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
