"""Compress recipes: YAML files whose sections are the stages, holding the stage commands' own options.

    teacher: minilm              # top level: what the whole run is about (flags override these)
    task: rotten_tomatoes
    distillation:                # a stage is on when its section is present (an empty section: its defaults)
      student_layers: 2
      num_train_epochs: 3
    structured_pruning: {heads: 0.5, ffn: 0.5, recover: true}
    vocabulary_pruning: {min_count: 1}
    quantization: {quantize_embeddings: true}

A recipe is given by name (a file `recipes/compress/NAME.yaml`) or by path. Which options a stage takes is the
business of the command line that builds the stages (bertlite.cli.compress), where the commands' dataclasses live.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import BertliteError

# The stages in the order they run; a recipe lists any subset, in any order.
STAGE_ORDER = ("teacher_finetune", "general_distillation", "augmentation", "distillation", "structured_pruning",
               "vocabulary_pruning", "quantization", "baseline", "evaluation")
TOP_LEVEL = ("teacher", "task", "max_train_examples", "max_eval_examples", "seed")
DEFAULT_RECIPE = "default"


def recipe_dirs() -> list[Path]:
    """Where recipe names are looked up: ./recipes/compress, then the one beside the bertlite sources."""
    return [Path.cwd() / "recipes" / "compress", Path(__file__).resolve().parents[2] / "recipes" / "compress"]


def recipe_names() -> list[str]:
    return sorted({p.stem for d in recipe_dirs() if d.is_dir() for p in d.glob("*.yaml")})


def find_recipe(name_or_file: str) -> str:
    if os.path.isfile(name_or_file):
        return name_or_file
    if not name_or_file.endswith((".yaml", ".yml")) and "/" not in name_or_file:
        for folder in recipe_dirs():
            path = folder / f"{name_or_file}.yaml"
            if path.is_file():
                return str(path)
    names = ", ".join(recipe_names()) or "none found"
    raise BertliteError(f"No recipe {name_or_file!r}: give a recipe file or one of: {names}.")


def load_recipe(name_or_file: str) -> tuple[str, dict]:
    """(path, recipe) with top-level keys and stage sections checked; stage options are checked by the caller."""
    import yaml

    path = find_recipe(name_or_file)
    try:
        with open(path) as f:
            values = yaml.safe_load(f) or {}
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise BertliteError(f"The recipe {path} is not valid YAML ({first}).") from err
    if not isinstance(values, dict):
        raise BertliteError(f"The recipe {path} must be a mapping of stage names to options.")
    values = {str(k).replace("-", "_"): v for k, v in values.items()}
    unknown = [k for k in values if k not in STAGE_ORDER and k not in TOP_LEVEL]
    if unknown:
        raise BertliteError(f"Unknown stage or key {', '.join(map(repr, unknown))} in the recipe {path}: stages are "
                            f"{', '.join(STAGE_ORDER)}; top-level keys {', '.join(TOP_LEVEL)}.")
    for stage in STAGE_ORDER:
        if stage in values:
            section = values[stage]
            if section is None:
                values[stage] = {}
            elif not isinstance(section, dict):
                raise BertliteError(f"Stage {stage!r} of the recipe {path} must be a mapping of options, got {section!r}.")
            else:
                values[stage] = {str(k).replace("-", "_"): v for k, v in section.items()}
    return path, values
