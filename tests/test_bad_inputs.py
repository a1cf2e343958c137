"""The bad-input matrix: bad inputs driven through the real `bertlite` command line in subprocesses. For each one:
exit code != 0, exactly one line on stderr naming the problem, no traceback, and every folder's previous content
(inputs and output folders alike) unchanged.

Most cases run through tests/cli_driver.py, one subprocess that calls `bertlite.cli.main` per case exactly as the
console script does (torch is imported once); a handful run as `python -m bertlite ...` each, in parallel with it."""

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys

import pytest

from conftest import save_tiny_classifier

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.path.join(REPO, "tests", "cli_driver.py")
QUICK = ["--max_train_examples", "8", "--max_eval_examples", "8", "--num_train_epochs", "1", "--max_length", "32",
         "--no_measure_latency", "--disable_tqdm", "true"]


class Payload:
    """A pickle that would create a file if anything unpickled it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _recipe(root, name, text):
    (root / name).write_text(text)
    return name


def _setup(root):
    """Input folders and files of the matrix, in `root` (the commands' working folder)."""
    from bertlite.quantization import quantize_folder

    save_tiny_classifier(root / "model")
    shutil.copytree(root / "model", root / "corrupt")
    data = (root / "corrupt" / "model.safetensors").read_bytes()
    (root / "corrupt" / "model.safetensors").write_bytes(data[: len(data) // 3])  # truncated mid-tensor
    (root / "pickled").mkdir()
    shutil.copy(root / "model" / "config.json", root / "pickled" / "config.json")
    (root / "pickled" / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(str(root / "PWNED"))))
    quantize_folder(str(root / "model"), str(root / "model-int8"))
    (root / "afile").write_text("a file, not a folder\n")
    (root / "empty.csv").write_text("")
    (root / "header.csv").write_text("text,label\n")
    (root / "floats.csv").write_text("text,label\n" + "".join(f"sentence number {i},{i / 10}\n" for i in range(12)))
    _recipe(root, "fraction.yaml", "student_layers: 2.5\n")
    _recipe(root, "list.yaml", "student_layers: [1, 2]\n")
    _recipe(root, "word.yaml", "temperature: hot\n")
    _recipe(root, "unknown.yaml", "temperture: 2.0\n")
    _recipe(root, "broken.yaml", "student_layers: [1, 2\n")
    _recipe(root, "notamap.yaml", "- student_layers\n")
    # A finished-looking distillation folder whose recorded recipe differs from every command below.
    (root / "other-recipe").mkdir()
    (root / "other-recipe" / "bertlite_job.json").write_text(json.dumps(
        {"job": "task distillation", "settings": {"temperature": 9.0}, "finished": True}))
    # A folder holding a model that no bertlite job wrote there.
    save_tiny_classifier(root / "foreign")
    (root / "foreign" / "notes.txt").write_text("mine\n")


def _out(root, name):
    """An existing output folder with content that must survive the failed command."""
    folder = root / "out" / name
    folder.mkdir(parents=True)
    (folder / "keep.txt").write_text(f"previous content of {name}\n")
    return f"out/{name}"


def _snapshot(root) -> dict:
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
        if folder != str(root):
            files.setdefault(os.path.relpath(folder, root) + "/", "folder")
    return files


def _cases(root):
    """(name, argv, what the one line must name)."""
    o = lambda name: _out(root, name)  # noqa: E731
    d = lambda *a: ["distill", "--teacher", "model", "--student_layers", "1", *QUICK, *a]  # noqa: E731
    return [
        ("unknown command", ["frobnicate"], "unknown command"),
        ("unknown flag", d("--output_dir", o("flag"), "--temperture", "2"), "temperture"),
        ("flag of wrong type", d("--output_dir", o("wrongtype"), "--temperature", "hot"), "temperature"),
        ("flag choice", ["quantize", "--model", "model", "--output_dir", o("choice"), "--backend", "gpu"], "backend"),
        ("missing teacher folder", d("--output_dir", o("noteacher"), "--teacher", "./missing"), "does not exist"),
        ("truncated teacher weights", d("--output_dir", o("corrupt-teacher"), "--teacher", "corrupt"), "corrupt"),
        ("pickle-only teacher", d("--output_dir", o("pickle-teacher"), "--teacher", "pickled"), "pickled weights"),
        ("zero student layers", d("--output_dir", o("zero"), "--student_layers", "0"), "student_layers"),
        ("student deeper than teacher", d("--output_dir", o("deep"), "--student_layers", "5"), "deeper"),
        ("student layer ids outside", d("--output_dir", o("ids"), "--student_layer_ids", "0,9"), "student_layer_ids"),
        ("max_length too small", d("--output_dir", o("short"), "--max_length", "4"), "max_length"),
        ("unknown task", d("--output_dir", o("task"), "--task", "no_such_task_here"), "no_such_task_here"),
        ("missing data file", d("--output_dir", o("nofile"), "--task", "missing.csv"), "missing.csv"),
        ("empty csv", d("--output_dir", o("emptycsv"), "--task", "empty.csv"), "empty.csv"),
        ("header-only csv", d("--output_dir", o("headercsv"), "--task", "header.csv"), "header.csv"),
        ("float labels, 2-label teacher", d("--output_dir", o("floats"), "--task", "floats.csv"), "label"),
        ("missing recipe", d("--output_dir", o("norecipe"), "--config", "missing.yaml"), "missing.yaml"),
        ("broken recipe", d("--output_dir", o("broken"), "--config", "broken.yaml"), "broken.yaml"),
        ("recipe not a mapping", d("--output_dir", o("notamap"), "--config", "notamap.yaml"), "notamap.yaml"),
        ("recipe fraction", d("--output_dir", o("fraction"), "--config", "fraction.yaml"), "student_layers must be a whole number"),
        ("recipe list", d("--output_dir", o("list"), "--config", "list.yaml"), "student_layers takes one value"),
        ("recipe word for number", d("--output_dir", o("word"), "--config", "word.yaml"), "temperature must be a number"),
        ("recipe unknown key", d("--output_dir", o("unknownkey"), "--config", "unknown.yaml"), "temperture"),
        ("output is a file", d("--output_dir", "afile"), "is a file"),
        ("output below a file", d("--output_dir", "afile/below"), "is a file"),
        ("other recipe in the folder", d("--output_dir", "other-recipe"), "temperature"),
        ("another model in the folder", d("--output_dir", "foreign"), "--fresh"),
        ("quantize missing model", ["quantize", "--model", "./missing", "--output_dir", o("q-missing")], "does not exist"),
        ("quantize truncated weights", ["quantize", "--model", "corrupt", "--output_dir", o("q-corrupt")], "corrupt"),
        ("quantize pickle-only", ["quantize", "--model", "pickled", "--output_dir", o("q-pickle")], "pickled weights"),
        ("quantize an int8 folder", ["quantize", "--model", "model-int8", "--output_dir", o("q-int8")], "int8"),
        ("quantize output is a file", ["quantize", "--model", "model", "--output_dir", "afile"], "is a file"),
        ("quantize onto its input", ["quantize", "--model", "model", "--output_dir", "model"], "must differ"),
        ("quantize check examples 0", ["quantize", "--model", "model", "--output_dir", o("q-zero"), "--max_check_examples", "0"], "max-check-examples"),
        ("prune truncated weights", ["prune", "--model", "corrupt", "--heads", "0.5", "--output_dir", o("p-corrupt")], "corrupt"),
        ("prune heads 1.0", ["prune", "--model", "model", "--heads", "1.0", "--output_dir", o("p-heads")], "heads"),
        ("prune output is a file", ["prune", "--model", "model", "--heads", "0.5", "--output_dir", "afile"], "is a file"),
        ("prune sparsity 1.5", ["prune", "--model", "model", "--method", "magnitude", "--sparsity", "1.5", "--output_dir", o("p-sparsity")], "sparsity"),
        ("weight-prune output is a file", ["prune", "--model", "model", "--method", "magnitude", "--sparsity", "0.5", "--output_dir", "afile"], "is a file"),
        ("push missing folder", ["push", "./missing", "--repo_id", "org/name"], "does not exist"),
        ("push bad repo id", ["push", "model-int8", "--repo_id", "not a repo id"], "repo id"),
        ("augment missing data", ["augment", "--task", "missing.csv", "--output_dir", o("a-missing")], "missing.csv"),
    ]


# Run as their own `python -m bertlite` processes, the console script's exact path.
SUBPROCESS = ("truncated teacher weights", "quantize pickle-only", "prune heads 1.0", "recipe fraction", "unknown command")


def test_bad_input_matrix(tmp_path):
    root = tmp_path
    _setup(root)
    cases = _cases(root)
    assert len(cases) >= 30
    before = _snapshot(root)
    env = {**os.environ, "PYTHONPATH": REPO, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    in_driver = [c for c in cases if c[0] not in SUBPROCESS]
    (root / ".cases.json").write_text(json.dumps([argv for _, argv, _ in in_driver]))
    procs = {name: subprocess.Popen([sys.executable, "-m", "bertlite", *argv], cwd=root, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
             for name, argv, _ in cases if name in SUBPROCESS}
    driver = subprocess.run([sys.executable, DRIVER, ".cases.json", ".results.json"], cwd=root, env=env,
                            capture_output=True, text=True, timeout=600)
    assert driver.returncode == 0, driver.stderr[-3000:]
    results = dict(zip((c[0] for c in in_driver), json.loads((root / ".results.json").read_text())))
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        results[name] = {"rc": proc.returncode, "stderr": err}
    for extra in (".cases.json", ".results.json"):
        (root / extra).unlink()

    problems = []
    for name, argv, expected in cases:
        rc, err = results[name]["rc"], results[name]["stderr"]
        lines = [line for line in err.splitlines() if line.strip()]
        if rc == 0:
            problems.append(f"{name}: exit code 0")
        if "Traceback" in err:
            problems.append(f"{name}: traceback:\n{err[-1500:]}")
        elif len(lines) != 1:
            problems.append(f"{name}: {len(lines)} stderr lines: {lines[:6]}")
        elif expected.lower() not in lines[0].lower():
            problems.append(f"{name}: the line does not name {expected!r}: {lines[0]}")
    assert not problems, "\n".join(problems)
    after = _snapshot(root)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"failed commands changed files: {changed}"
    assert not (root / "PWNED").exists()  # the pickle was never unpickled
