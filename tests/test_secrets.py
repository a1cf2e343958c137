"""Secrets never leave this machine: a token given on the command line is written to no file and published nowhere,
an inherited record cannot carry one forward, and `bertlite push` uploads only what a model folder holds.

The main test runs the real CLI in a subprocess (`bertlite distill ... --hub_token hf_... --push_repo_id ...`) against
the loopback Hub server (tests/hub_server.py), then greps every file under the test's tmp folder (the run's output,
checkpoints, HF_HOME, and the server's stored objects): the secret appears in none.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bertlite.record import CompressionConfig
from bertlite.record import redact_secrets

sys.path.insert(0, os.path.dirname(__file__))
from conftest import save_tiny_classifier  # noqa: E402
from hub_server import HubServer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SECRET = "hf_SECRETabc123"
OWNER_TOKEN = "hf_owner_token_0123456789abcdef"  # pushes the folders of the push tests (never the SECRET)


def files_holding(root: Path, needle: str) -> list[str]:
    """Every file under `root` whose bytes contain `needle` (pickles, safetensors and JSON alike)."""
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                if needle.encode() in f.read():
                    found.append(os.path.relpath(path, root))
    return found


@pytest.fixture(autouse=True)
def _local_hub_mode(monkeypatch):
    """The loopback server speaks LFS, not Xet; the suite runs offline but this server is on 127.0.0.1."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture(scope="module")
def teacher_and_task(tmp_path_factory):
    """A tiny fine-tuned-shaped teacher (2-label head, the packaged MiniLM tokenizer) and a tiny local CSV task."""
    root = tmp_path_factory.mktemp("inputs")
    save_tiny_classifier(root / "teacher")
    good, bad = ["great", "moving", "funny", "smart"], ["dull", "boring", "slow", "weak"]
    rows = ["text,label"] + [f"a {(good if i % 2 else bad)[i % 4]} film number {i},{i % 2}" for i in range(60)]
    (root / "task.csv").write_text("\n".join(rows) + "\n")
    return root / "teacher", root / "task.csv"


def _env(hub_url: str, tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT=hub_url, HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "hf_home"), PYTHONPATH=str(ROOT),
               OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", HF_HUB_DISABLE_PROGRESS_BARS="1",
               TOKENIZERS_PARALLELISM="false")
    return env


def test_redaction_covers_every_form_of_secret():
    line = ("bertlite distill --hub_token hf_AAAA1111 --token=tok123 --api-key 'two words' --db_password pw "
            "--max_tokens 5 --tokenizer minilm --teacher hf_BBBB2222/x")
    assert redact_secrets(line) == ("bertlite distill --hub_token *** --token=*** --api-key *** --db_password *** "
                                    "--max_tokens 5 --tokenizer minilm --teacher ***/x")
    assert redact_secrets("HF_TOKEN=abc MY_SECRET=s1 OTHER=1 bertlite push") == "HF_TOKEN=*** MY_SECRET=*** OTHER=1 bertlite push"
    record = {"metrics": {"command": "x --secret s"}, "hub_token": "abc", "steps": [{"params": {"note": "hf_CCC333"}}],
              "num_tokens": 3}
    assert redact_secrets(record) == {"metrics": {"command": "x --secret ***"}, "hub_token": "***",
                                      "steps": [{"params": {"note": "***"}}], "num_tokens": 3}


def test_distill_with_hub_token_writes_and_publishes_no_secret(tmp_path, teacher_and_task):
    teacher, task = teacher_and_task
    out = tmp_path / "distilled"
    with HubServer(root=str(tmp_path / "hub-server"), tokens={SECRET: {"name": "someone", "orgs": ["org"]}}) as hub:
        argv = [sys.executable, "-m", "bertlite", "distill", "--teacher", str(teacher), "--task", str(task),
                "--student_layers", "1", "--max_steps", "2", "--per_device_train_batch_size", "8", "--max_length", "32",
                "--save_strategy", "steps", "--save_steps", "1", "--eval_strategy", "no", "--report_to", "none",
                "--measure_latency", "false", "--disable_tqdm", "true", "--output_dir", str(out),
                "--hub_token", SECRET, "--push_repo_id", "org/name"]
        run = subprocess.run(argv, capture_output=True, text=True, env=_env(hub.url, tmp_path), cwd=tmp_path, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        published = hub.files("org/name")  # the push authenticated with the --hub_token value

    assert {"model.safetensors", "metrics.json", "compression_config.json", "README.md"} <= set(published)
    assert list(out.glob("checkpoints/checkpoint-*/training_args.bin"))  # the pickled arguments were written...
    assert "--hub_token ***" in json.loads((out / "metrics.json").read_text())["command"]  # ...and the command recorded
    assert b"--hub_token ***" in published["README.md"]
    core = SECRET.removeprefix("hf_")
    assert files_holding(tmp_path, core) == []  # output, checkpoints, HF_HOME and the server's stored objects
    assert not [name for name, content in published.items() if core.encode() in content]
    assert core not in run.stdout + run.stderr


def _folder_with_a_leaked_record(root: Path) -> Path:
    """A folder written by an older bertlite: its record and metrics.json hold the command with a token."""
    folder = save_tiny_classifier(root / "old-model")
    leaked = f"bertlite distill --hub_token {SECRET} --output_dir old-model"
    record = {"base_model": "minilm", "task": "rotten_tomatoes", "dataset": None, "split_note": None,
              "steps": [{"method": "distillation", "params": {"temperature": 2.0, "launcher": f"HF_TOKEN={SECRET} bertlite"}, "date": "2026-01-01T00:00:00Z",
                         "bertlite_version": "0.1.0"}],
              "metrics": {"student": {"test_accuracy": 0.5}, "command": leaked}}
    (folder / "compression_config.json").write_text(json.dumps(record))  # raw: bypasses today's redaction
    (folder / "metrics.json").write_text(json.dumps({"student": {"test_accuracy": 0.5}, "command": leaked}))
    return folder


def test_quantize_and_prune_of_a_folder_with_a_leaked_record_write_no_secret(tmp_path, teacher_and_task, capsys):
    from bertlite.cli import main

    source = _folder_with_a_leaked_record(tmp_path)
    core = SECRET.removeprefix("hf_")
    assert files_holding(source, core)  # the precondition: the old folder does hold it
    assert main(["quantize", "--model", str(source), "--output-dir", str(tmp_path / "int8")]) == 0
    _, task = teacher_and_task
    assert main(["prune", "--model", str(source), "--heads", "0.5", "--criterion", "magnitude", "--task", str(task),
                 "--max_eval_examples", "8", "--batch_size", "8", "--output_dir", str(tmp_path / "pruned")]) == 0
    for out in (tmp_path / "int8", tmp_path / "pruned"):
        history = CompressionConfig.from_pretrained(str(out))
        assert history.methods[0] == "distillation" and len(history.methods) == 2  # the history was inherited
        assert files_holding(out, core) == [], out
    assert core not in "".join(capsys.readouterr())


def _push(hub, folder, repo_id, **kwargs):
    from bertlite import push_compressed

    return push_compressed(str(folder), repo_id, token=OWNER_TOKEN, endpoint=hub.url, **kwargs)


@pytest.fixture
def owner_hub(tmp_path):
    with HubServer(root=str(tmp_path / "hub-server"), tokens={OWNER_TOKEN: {"name": "owner"}}) as hub:
        yield hub


def test_push_of_a_folder_with_a_leaked_record_publishes_no_secret(owner_hub, tmp_path):
    folder = _folder_with_a_leaked_record(tmp_path)
    _push(owner_hub, folder, "owner/old")
    published = owner_hub.files("owner/old")
    core = SECRET.removeprefix("hf_")
    assert not [name for name, content in published.items() if core.encode() in content]
    assert json.loads(published["metrics.json"])["command"] == "bertlite distill --hub_token *** --output_dir old-model"


def test_push_uploads_only_model_files_and_lists_what_it_skips(owner_hub, tmp_path, teacher_and_task, monkeypatch, capsys):
    from huggingface_hub import constants

    from bertlite.cli import main

    teacher, _ = teacher_and_task
    folder = Path(shutil.copytree(teacher, tmp_path / "model"))
    CompressionConfig(base_model="minilm").save_pretrained(str(folder))
    (folder / "credentials.json").write_text(json.dumps({"aws_secret_access_key": "AKIA-not-for-the-hub"}))
    (folder / "notes.txt").write_text("my private notes\n")
    (folder / "helper.py").write_text("print('not the model code')\n")

    monkeypatch.setattr(constants, "ENDPOINT", owner_hub.url)
    monkeypatch.setenv("HF_TOKEN", OWNER_TOKEN)
    assert main(["push", str(folder), "--repo-id", "owner/model"]) == 0
    published = set(owner_hub.files("owner/model"))
    assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "compression_config.json",
            "README.md"} <= published
    assert not published & {"credentials.json", "notes.txt", "helper.py"}
    printed = capsys.readouterr().out
    skipped = next(line for line in printed.splitlines() if "skipped" in line)
    assert all(name in skipped for name in ("credentials.json", "notes.txt", "helper.py"))

    # Asked for explicitly, a file travels: repeated flags and comma-separated globs.
    assert main(["push", str(folder), "--repo-id", "owner/model", "--include", "credentials.json",
                 "--include", "notes.txt,*.md"]) == 0
    published = set(owner_hub.files("owner/model"))
    assert {"credentials.json", "notes.txt"} <= published and "helper.py" not in published


def test_the_pruned_models_own_code_travels(owner_hub, tmp_path, teacher_and_task):
    """A model whose config.json names its code (auto_map) pushes that code, and only that."""
    teacher, _ = teacher_and_task
    folder = Path(shutil.copytree(teacher, tmp_path / "model"))
    CompressionConfig(base_model="minilm").save_pretrained(str(folder))
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_bertlite.BertliteForSequenceClassification"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_bertlite.py").write_text("# the model's code\n")
    (folder / "train_script.py").write_text("# not the model's code\n")
    result = _push(owner_hub, folder, "owner/coded")
    assert "modeling_bertlite.py" in result.uploaded and "train_script.py" in result.left_local
