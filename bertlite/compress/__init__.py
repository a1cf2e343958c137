"""`bertlite compress`: the stages runner (stages.py), recipes (recipe.py) and the report of every stage (report.py)."""

from .recipe import STAGE_ORDER, load_recipe
from .stages import FINAL_DIR, MARKER, STAGES_DIR, Stage, run_stages

__all__ = ["FINAL_DIR", "MARKER", "STAGES_DIR", "STAGE_ORDER", "Stage", "load_recipe", "run_stages"]
