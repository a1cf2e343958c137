"""The `bertlite` command line: help for every command, clear errors for bad input, recipes merged with flags."""

import subprocess
import sys

import pytest

from bertlite.cli import COMMANDS, main, parse_command


def test_top_level_help_lists_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "--config" in capsys.readouterr().out


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "bertlite", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "distill" in result.stdout


def test_recipe_values_with_flags_overriding(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("temperature: 5.0\nstudent_layers: 2\nlearning_rate: 0.0003\n")
    _, (args, config, *_) = parse_command("distill", ["--config", str(recipe), "--temperature", "3.0"])
    assert config.temperature == 3.0  # flag wins
    assert args.student_layers == 2 and config.learning_rate == 0.0003  # from the recipe


def test_shipped_recipes_parse():
    import glob
    import os

    recipes = glob.glob(os.path.join(os.path.dirname(__file__), "..", "recipes", "*.yaml"))
    assert recipes
    for recipe in recipes:
        command = os.path.basename(recipe).split("_")[0].split(".")[0]
        if command in COMMANDS:
            parse_command(command, ["--config", recipe])


@pytest.mark.parametrize("argv,message", [
    (["distill", "--temperature", "-1"], "temperature must be > 0"),
    (["distill", "--student_layers", "0"], "student_layers must be >= 1"),
    (["distill", "--layer_map", "1:9"], "teacher has layers 1..6"),
    (["distill", "--student_layers", "9"], "cannot be deeper"),
    (["distill", "--task", "nope/missing.csv"], "does not exist"),
    (["distill", "--teacher", "./no-such-folder"], "does not exist"),
    (["distill", "--config", "missing.yaml"], "does not exist"),
    (["distill", "--student_layer_ids", "0,a"], "comma-separated integers"),
    # before the teacher's fine-tune, not minutes later when the trainer is built
    (["distill", "--relation_weight", "1", "--relation_heads", "5"], "relation_heads 5 does not divide the teacher's"),
])
def test_bad_input_gives_clear_error_without_traceback(argv, message, capsys, tmp_path):
    code = main(argv + ["--output_dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert message in err and "Traceback" not in err


def test_unknown_recipe_key(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("temprature: 2\n")
    assert main(["distill", "--config", str(recipe)]) == 1
    assert "temprature" in capsys.readouterr().err


def test_unknown_flag_is_named(capsys):
    assert main(["distill", "--no-such-flag", "1"]) == 1
    assert "--no-such-flag" in capsys.readouterr().err


def test_help_into_a_closed_pipe_is_not_a_traceback():
    """`bertlite --help | head -1`: the reader leaves early; the command must end quietly, as other CLI tools do."""
    proc = subprocess.Popen([sys.executable, "-m", "bertlite", "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the child has written anything: its first write fails with EPIPE
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err, err
