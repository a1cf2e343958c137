"""The README's set-up commands are the ones CI runs."""

import os
import re

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _readme_commands():
    text = open(os.path.join(ROOT, "README.md")).read()
    block = text.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    commands = _readme_commands()
    assert len(commands) == 2
    main_job, test_command = commands
    assert "bertlite distill" in main_job and "pytest" in test_command
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    assert test_command in ci.splitlines()


def test_readme_quotes_no_machine_paths():
    text = open(os.path.join(ROOT, "README.md")).read()
    assert not re.search(r"/(root|work|tmp|home)/", text)
