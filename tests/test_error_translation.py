"""Library errors become one BertliteError at the place that reads (issue 16, item 7): corrupt or truncated weights,
pickle-only folders, output folders that cannot be one (checked before any work), public functions given wrong
types. The CLI catches BertliteError only, so each of these is one line there (see also test_bad_inputs.py)."""

import pickle
import shutil

import pytest

import bertlite
from bertlite.cli import main
from bertlite.errors import BertliteError
from conftest import save_tiny_classifier


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling would create the marker file
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("errors")
    good = save_tiny_classifier(root / "good")
    shutil.copytree(good, root / "truncated")
    weights = root / "truncated" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    shutil.copytree(good, root / "garbage")
    (root / "garbage" / "model.safetensors").write_bytes(b"\xff" * 64)
    (root / "pickled").mkdir()
    shutil.copy(good / "config.json", root / "pickled" / "config.json")
    (root / "pickled" / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(str(root / "PWNED"))))
    return root


@pytest.mark.parametrize("name", ["truncated", "garbage"])
def test_corrupt_weights_are_one_error_naming_the_cause(folders, name):
    for load in (bertlite.load_model, bertlite.load_compressed):
        with pytest.raises(BertliteError, match="truncated or corrupt"):
            load(str(folders / name))


def test_pickle_only_folder_is_refused_without_unpickling(folders):
    for load in (bertlite.load_model, bertlite.load_compressed):
        with pytest.raises(BertliteError, match="pickled weights only"):
            load(str(folders / "pickled"))
    assert not (folders / "PWNED").exists()


def test_cli_reports_corrupt_input_in_one_line(folders, tmp_path, capsys):
    assert main(["quantize", "--model", str(folders / "truncated"), "--output_dir", str(tmp_path / "q")]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "truncated or corrupt" in lines[0] and lines[0].startswith("bertlite quantize: error:")
    assert not (tmp_path / "q").exists()  # the output folder is only made when there is something to write


@pytest.mark.parametrize("argv", [
    ["quantize", "--model", "{bad}", "--output_dir", "{file}"],
    ["prune", "--model", "{bad}", "--heads", "0.5", "--output_dir", "{file}"],
    ["prune", "--model", "{bad}", "--method", "magnitude", "--sparsity", "0.5", "--output_dir", "{file}/below"],
])
def test_output_folder_is_checked_before_any_work(folders, tmp_path, capsys, argv):
    """The output is checked first: with a corrupt input too, the error is about the output folder (quantize and prune
    used to find out after all their work)."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    argv = [a.format(bad=folders / "truncated", file=afile) for a in argv]
    assert main(argv) == 1
    assert "is a file" in capsys.readouterr().err
    assert afile.read_text() == "x"


def test_read_only_output_folder_is_refused_before_any_work(folders, tmp_path, capsys):
    import os

    if os.geteuid() == 0:
        pytest.skip("root can write to read-only folders")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(["quantize", "--model", str(folders / "truncated"), "--output_dir", str(locked / "q")]) == 1
        assert "permission denied" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def _tiny():
    from conftest import tiny_model

    return tiny_model()


@pytest.mark.parametrize("call, message", [
    (lambda: bertlite.load_compressed(b"path"), "as a string"),
    (lambda: bertlite.load_compressed(None), "as a string"),
    (lambda: bertlite.load_model(5), "must be a string"),
    (lambda: bertlite.load_quantized(b"x"), "given as a string"),
    (lambda: bertlite.build_student("x"), "teacher must be a Transformers model"),
    (lambda: bertlite.build_student(_tiny(), num_layers=0), "at least 1 layer"),
    (lambda: bertlite.build_student(_tiny(), num_layers=1.5), "num_layers must be a whole number"),
    (lambda: bertlite.quantize_model("x"), "model must be a torch model"),
    (lambda: bertlite.prune_structured(None, heads=0.5), "model must be a Transformers model"),
    (lambda: bertlite.prune_weights("m"), "model must be a torch model"),
    (lambda: bertlite.push_compressed(123, "org/name"), "given as a string"),
    (lambda: bertlite.finetuned_teacher(None, "rotten_tomatoes", "out"), "empty model name"),
])
def test_public_functions_check_their_arguments_at_the_entry(call, message):
    with pytest.raises(BertliteError, match=message):
        call()


def test_push_with_a_repo_id_that_is_not_a_string(tmp_path):
    from bertlite.quantization import quantize_folder

    folder, _ = quantize_folder(str(save_tiny_classifier(tmp_path / "m")), str(tmp_path / "int8"))
    with pytest.raises(BertliteError, match="not a Hub repo id"):
        bertlite.push_compressed(folder, 123)
