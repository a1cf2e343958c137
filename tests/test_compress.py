"""`bertlite compress`: every stage on a tiny teacher and a tiny local CSV task, resume, changed settings, Ctrl-C,
the final folder in transformers.pipeline, the push to the loopback Hub server, and recipe errors."""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, os.path.dirname(__file__))
from hub_server import HubServer  # noqa: E402

from bertlite.cli import main  # noqa: E402
from bertlite.compress.stages import MARKER  # noqa: E402

ALICE = "hf_alice_secret_token_0123456789"
POSITIVE = ["good", "great", "moving", "funny", "warm", "smart", "lovely", "brilliant"]
NEGATIVE = ["bad", "dull", "boring", "flat", "weak", "silly", "tedious", "awful"]
FILLER = ["the", "film", "movie", "story", "cast", "plot", "is", "was", "very", "quite", "and", "a", "with", "ending"]
STAGES = ["01-teacher_finetune", "02-general_distillation", "03-augmentation", "04-distillation",
          "05-structured_pruning", "06-vocabulary_pruning", "07-quantization", "08-baseline", "09-evaluation"]
TEXTS = ["the film is good and warm", "a dull , boring plot"]


def write_task(path: Path, n: int = 80) -> Path:
    """A small two-label sentiment CSV (label: a positive or a negative word), split 80/10/10 by bertlite."""
    rng = random.Random(0)
    rows = ["text,label"]
    for i in range(n):
        label = i % 2
        words = rng.sample(FILLER, 5) + [rng.choice(POSITIVE if label else NEGATIVE)]
        rng.shuffle(words)
        rows.append(f"{' '.join(words)},{label}")
    path.write_text("\n".join(rows) + "\n")
    return path


def write_teacher(folder: Path) -> Path:
    """A tiny BERT encoder without a task head (so the run fine-tunes it first), with the MiniLM tokenizer."""
    from transformers import BertConfig, BertModel

    from bertlite.loading import load_tokenizer

    tokenizer = load_tokenizer("minilm")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_recipe(task: Path, **changes) -> dict:
    steps = {"per_device_train_batch_size": 8, "save_strategy": "no", "eval_strategy": "no", "disable_tqdm": True}
    recipe = {
        "task": str(task),
        "teacher_finetune": {"epochs": 1, "batch_size": 16},
        "general_distillation": {"student_layers": 1, "corpus": str(task), "max_steps": 2, "hidden_weight": 1.0,
                                 "attention_weight": 1.0, **steps},
        "augmentation": {"num_variants": 1, "max_examples": 8},
        "distillation": {"max_steps": 3, "learning_rate": "1e-4", "measure_latency": False, **steps},
        "structured_pruning": {"heads": 0.5, "ffn": 0.5, "recover": True, "recovery_steps": 2, "batch_size": 8,
                               "importance_examples": 8},
        "vocabulary_pruning": {"min_count": 1},
        "quantization": {"quantize_embeddings": True},
        "baseline": {"epochs": 1, "batch_size": 8},
        "evaluation": {"latency": True},
    }
    for stage, options in changes.items():
        recipe[stage] = {**recipe[stage], **options}
    return recipe


def compress(run_dir: Path, teacher: Path, recipe: dict, *extra) -> tuple[int, str, str]:
    path = run_dir.parent / f"{run_dir.name}-recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return main(["compress", "--teacher", str(teacher), "--recipe", str(path), "--output_dir", str(run_dir), *extra])


def mtimes(run_dir: Path) -> dict:
    return {name: (os.stat(run_dir / "stages" / name / MARKER).st_mtime_ns) for name in STAGES
            if (run_dir / "stages" / name / MARKER).exists()}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One full run of every stage, shared by the tests below (they copy it before changing anything)."""
    root = tmp_path_factory.mktemp("compress")
    task, teacher = write_task(root / "reviews.csv"), write_teacher(root / "teacher")
    run_dir = root / "run"
    code = compress(run_dir, teacher, tiny_recipe(task))
    assert code == 0
    return root, task, teacher, run_dir


def test_every_stage_writes_its_folder_and_marker(tiny_run):
    _, task, teacher, run_dir = tiny_run
    assert sorted(os.listdir(run_dir / "stages")) == STAGES
    for name in STAGES:
        marker = json.loads((run_dir / "stages" / name / MARKER).read_text())
        assert marker["stage"] == name[3:] and marker["settings"]["task"] == str(task)
        assert (marker["input"] is None) == (name == STAGES[0])  # every later stage is chained to the one before
    for name in ("01-teacher_finetune", "02-general_distillation", "04-distillation", "05-structured_pruning",
                 "06-vocabulary_pruning"):
        assert (run_dir / "stages" / name / "model.safetensors").is_file(), name
    assert (run_dir / "stages" / "07-quantization" / "int8_model.safetensors").is_file()
    assert (run_dir / "stages" / "03-augmentation" / "bertlite_augmentation.json").is_file()
    report = json.loads((run_dir / "stages" / "09-evaluation" / "report.json").read_text())
    assert [r["label"].split(" (")[0] for r in report["models"]] == [
        "teacher", "task distillation", "structured pruning", "vocabulary pruning", "int8 quantization",
        "shrink and fine-tune, same shape"]
    assert [r["role"] for r in report["models"]][-1] == "baseline"
    assert all("latency_ms_b8" in r and "speedup_b1" in r for r in report["models"])
    # The final folder is the int8 model with the report and a card that shows the final model's own numbers.
    final = run_dir / "final"
    assert {"int8_model.safetensors", "config.json", "tokenizer.json", "compression_config.json", "metrics.json",
            "report.md", "report.json", "README.md"} <= set(os.listdir(final))
    assert not (final / "checkpoints").exists()
    methods = [s["method"] for s in json.loads((final / "compression_config.json").read_text())["steps"]]
    order = [methods.index(m) for m in ("distillation", "structured_pruning", "vocabulary_pruning", "quantization")]
    assert order == sorted(order) and methods[-1] == "quantization"
    metrics = json.loads((final / "metrics.json").read_text())
    assert metrics["student"]["size_mb"] == report["models"][-2]["size_mb"]  # the final model, not the baseline
    card = (final / "README.md").read_text()
    assert f"{metrics['student']['test_accuracy']:.4f}" in card
    # Earlier stages' own figures stay in the record, set apart by each later step: the card shows none of them.
    record = json.loads((final / "compression_config.json").read_text())["metrics"]
    assert any("validation_accuracy" in entry["student"] for entry in record["earlier"] if entry["method"] == "distillation")
    assert "validation_accuracy" not in record.get("student", {})


def test_benchmark_from_the_run_names_and_measures_what_compress_measured(tiny_run, tmp_path):
    """`bertlite benchmark --from DIR` re-measures the run's models under the labels of compress's own report (the
    markers'), so reports of either kind are read side by side; final/ takes the place of the stage it copies."""
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run[3], run_dir)
    before = json.loads((run_dir / "final" / "report.json").read_text())["models"]
    assert main(["benchmark", "--from", str(run_dir), "--task", str(tiny_run[1]), "--rounds", "1", "--repeats", "1",
                 "--threads", "1", "--no_plot"]) == 0
    after = json.loads((run_dir / "final" / "report.json").read_text())["models"]
    assert [r["label"] for r in after] == [r["label"] for r in before]
    where = [os.path.relpath(r["path"], run_dir) for r in after]
    assert where == [os.path.relpath(r["path"], tiny_run[3]) for r in before][:-2] + ["final", "stages/08-baseline/int8"]
    assert after[-2].get("here")  # the final folder's card finds its own row
    assert [r["test_accuracy"] for r in after] == [r["test_accuracy"] for r in before]  # the same models


def test_baseline_is_the_final_shape_trained_on_labels_alone(tiny_run):
    """The shrink-and-fine-tune baseline: the final model's depth, head and FFN widths and vocabulary, in int8, from
    the fine-tuned teacher's layers and a label-only fine-tune; measured in the report, never taken for the final."""
    from safetensors import safe_open

    from bertlite.jobs import read_job

    run_dir = tiny_run[3]
    folder = run_dir / "stages" / "08-baseline"
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["finetuned", "int8", "pruned", "shrunk", "vocabulary"]

    def shapes(path):
        with safe_open(str(path / "int8_model.safetensors"), "pt") as f:
            return {n: tuple(f.get_slice(n).get_shape()) for n in f.keys()}

    final, base = shapes(run_dir / "final"), shapes(folder / "int8")
    assert final == base and any(n.endswith("word_embeddings.weight_int8") for n in final)  # layers, heads, FFN, vocabulary
    config = json.loads((folder / "int8" / "config.json").read_text())
    assert config["vocab_size"] == json.loads((run_dir / "final" / "config.json").read_text())["vocab_size"] < 30522
    job = read_job(str(folder / "finetuned"))
    assert job["finished"] and "shrink-and-fine-tune baseline" in job["settings"]
    # Trained from the teacher's layers, not from the distilled student: its weights differ from the final model's.
    with safe_open(str(run_dir / "final" / "int8_model.safetensors"), "pt") as a, \
            safe_open(str(folder / "int8" / "int8_model.safetensors"), "pt") as b:
        name = next(n for n in a.keys() if "encoder.layer.0" in n and n.endswith("query.weight_int8"))
        assert not torch.equal(a.get_tensor(name), b.get_tensor(name))
    report = json.loads((run_dir / "final" / "report.json").read_text())
    row = report["models"][-1]
    assert row["role"] == "baseline" and row["path"] == str(folder / "int8") and "test_accuracy" in row
    assert "shrink and fine-tune, same shape (baseline)" in (run_dir / "final" / "report.md").read_text()


def test_baseline_needs_a_distillation_stage(tmp_path, capsys):
    task = write_task(tmp_path / "reviews.csv", n=20)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"task": str(task), "quantization": {}, "baseline": {}}))
    assert main(["compress", "--teacher", "minilm", "--recipe", str(path), "--output_dir", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "Stage baseline" in err and "needs a distillation stage" in err and len(err.strip().splitlines()) == 1


def test_final_folder_runs_in_transformers_pipeline(tiny_run):
    from transformers import pipeline

    import bertlite

    final = tiny_run[3] / "final"
    model, tokenizer = bertlite.load_compressed(str(final), return_tokenizer=True)
    config = json.loads((final / "config.json").read_text())
    assert config["vocab_size"] < 30522  # vocabulary pruned
    assert getattr(model, "bertlite_quantization", None) is not None  # int8
    assert len(tokenizer) == config["vocab_size"]
    classify = pipeline("text-classification", model=model, tokenizer=tokenizer)
    out = classify(TEXTS)
    assert len(out) == 2 and all(o["label"] in model.config.id2label.values() for o in out)


def test_rerun_skips_every_finished_stage(tiny_run, capsys):
    _, task, teacher, run_dir = tiny_run
    before = mtimes(run_dir)
    weights = os.stat(run_dir / "stages" / "04-distillation" / "model.safetensors").st_mtime_ns
    capsys.readouterr()
    assert compress(run_dir, teacher, tiny_recipe(task)) == 0
    out = capsys.readouterr().out
    assert out.count(": unchanged, kept") == len(STAGES)
    assert "[5/9] structured pruning: unchanged" in out
    assert mtimes(run_dir) == before
    assert os.stat(run_dir / "stages" / "04-distillation" / "model.safetensors").st_mtime_ns == weights


def test_changed_setting_reruns_that_stage_and_all_after(tiny_run, tmp_path, capsys):
    _, task, teacher, run_dir = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)  # copy2 keeps the files' mtimes
    before = mtimes(copy)
    capsys.readouterr()
    assert compress(copy, teacher, tiny_recipe(task, vocabulary_pruning={"min_count": 2})) == 0
    out = capsys.readouterr().out
    after = mtimes(copy)
    for name in STAGES[:5]:
        assert after[name] == before[name], name
    for name in STAGES[5:]:
        assert after[name] != before[name], name
    assert "[6/9] vocabulary pruning: settings changed, running it again" in out
    assert "[7/9] int8 quantization: settings changed" in out and "[5/9] structured pruning: unchanged" in out
    # The new setting took effect: fewer tokens kept (words seen once in the training split are dropped).
    vocab = [json.loads((d / "stages" / "06-vocabulary_pruning" / "config.json").read_text())["vocab_size"]
             for d in (run_dir, copy)]
    assert vocab[1] < vocab[0]


def test_ctrl_c_keeps_finished_stages_and_the_next_run_resumes(tiny_run, tmp_path, capsys):
    from bertlite.cli.compress import CompressArguments, plan
    from bertlite.compress.stages import run_stages

    root, task, teacher, run_dir = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    before = mtimes(copy)
    recipe = tiny_recipe(task, quantization={"per_channel": False})
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    run_plan = plan(CompressArguments(teacher=str(teacher), recipe=str(path), output_dir=str(copy)))
    quantize = next(s for s in run_plan.stages if s.key == "quantization")

    def interrupted(folder, inputs):
        (Path(folder) / "partial.bin").write_bytes(b"half")  # a stage stopped half-way writes no marker
        raise KeyboardInterrupt

    quantize.run = interrupted
    with pytest.raises(KeyboardInterrupt):
        run_stages(run_plan.stages, str(copy))
    kept = mtimes(copy)
    assert all(kept[name] == before[name] for name in STAGES[:6])
    assert "07-quantization" not in kept  # not finished: no marker
    capsys.readouterr()
    assert compress(copy, teacher, recipe) == 0
    out = capsys.readouterr().out
    assert "[6/9] vocabulary pruning: unchanged" in out and "[7/9] int8 quantization\n" in out
    after = mtimes(copy)
    assert all(after[name] == before[name] for name in STAGES[:6]) and "07-quantization" in after
    settings = json.loads((copy / "stages" / "07-quantization" / MARKER).read_text())["settings"]
    assert settings["per_channel"] is False


def test_push_to_loopback_hub_loads_back_with_identical_logits(tiny_run, tmp_path, monkeypatch):
    from huggingface_hub import constants

    import bertlite

    _, task, teacher, run_dir = tiny_run
    server = HubServer(tokens={ALICE: {"name": "alice", "orgs": []}})
    server.start()
    try:
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_TOKEN", ALICE)
        # The push goes where HF_ENDPOINT points; set only around it (hf_hub_download rewrites URLs for an
        # endpoint argument that differs from constants.ENDPOINT).
        with monkeypatch.context() as patch:
            patch.setattr(constants, "ENDPOINT", server.url)
            assert compress(run_dir, teacher, tiny_recipe(task), "--push_repo_id", "alice/tiny-compressed") == 0
        files = server.files("alice/tiny-compressed")
        assert {"int8_model.safetensors", "config.json", "tokenizer.json", "README.md", "compression_config.json"} <= set(files)
        remote, tokenizer = bertlite.load_compressed("alice/tiny-compressed", endpoint=server.url, token=ALICE,
                                                     cache_dir=str(tmp_path / "cache"), return_tokenizer=True)
    finally:
        server.stop()
    local = bertlite.load_compressed(str(run_dir / "final"))
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(remote(**batch).logits, local(**batch).logits)


@pytest.mark.slow
def test_final_folder_loads_compiled_with_pt2e(tiny_run):
    import bertlite

    final = str(tiny_run[3] / "final")
    eager, tokenizer = bertlite.load_compressed(final, return_tokenizer=True)
    compiled = bertlite.load_compressed(final, compile="pt2e")
    batch = tokenizer(TEXTS, padding="max_length", max_length=16, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(compiled(**batch).logits, eager(**batch).logits, atol=5e-2)


@pytest.mark.parametrize("recipe, message", [
    ({"distillation": {}, "pruning": {}}, "Unknown stage or key 'pruning'"),
    ({"distillation": {"student_layer": 2}}, "Unknown option(s) student_layer in stage 'distillation'"),
    ({"distillation": {"student_layers": 0}}, "stage distillation: student_layers must be >= 1"),
    ({"structured_pruning": {"sparsity": 0.5}}, "needs heads and/or ffn"),
    ({"evaluation": {}}, "has no stage that makes a model"),
    ({"quantization": [1, 2]}, "must be a mapping of options"),
    ({"distillation": {}, "vocabulary_pruning": {"min_count": 0}}, "stage vocabulary_pruning: min_count must be >= 1"),
    ({"distillation": {}, "evaluation": {"latency": "yes"}}, "stage evaluation: latency must be a bool"),
    ({"distillation": {}, "evaluation": {"compile": "fast"}}, "compile must be pt2e or absent"),
])
def test_recipe_errors_are_one_line(recipe, message, tmp_path, capsys):
    task = write_task(tmp_path / "reviews.csv", n=20)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"task": str(task), **recipe}))
    code = main(["compress", "--teacher", "minilm", "--recipe", str(path), "--output_dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()  # nothing is written before the recipe is known to be good


def test_unknown_recipe_name_lists_the_recipes(capsys):
    assert main(["compress", "--recipe", "no-such-recipe"]) == 1
    err = capsys.readouterr().err
    assert "No recipe 'no-such-recipe'" in err and "default" in err and "quantize-only" in err
    assert len(err.strip().splitlines()) == 1


def test_packaged_recipes_are_valid():
    from bertlite.cli.compress import check_recipe
    from bertlite.compress.recipe import load_recipe

    for name in ("default", "tinybert4", "distilbert6", "prune-only", "quantize-only", "smoke"):
        path, recipe = load_recipe(name)
        check_recipe(path, recipe)
        assert "Measured:" in Path(path).read_text()


def test_prune_vocabulary_flag(tmp_path, capsys):
    from transformers import AutoTokenizer

    from bertlite.loading import load_model

    task = write_task(tmp_path / "reviews.csv")
    model_dir = tmp_path / "model"
    sys.path.insert(0, os.path.dirname(__file__))
    from conftest import save_tiny_classifier

    save_tiny_classifier(model_dir)
    out = tmp_path / "vocab"
    assert main(["prune", "--model", str(model_dir), "--task", str(task), "--vocabulary", "--output_dir", str(out)]) == 0
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = load_model(str(out))
    assert model.config.vocab_size == len(tokenizer) < 200  # the CSV has a few dozen words
    assert "Vocabulary: kept" in capsys.readouterr().out
    # The flag is for vocabulary pruning alone, and min_count needs it.
    assert main(["prune", "--model", str(model_dir), "--vocabulary", "--heads", "0.5"]) == 1
    assert main(["prune", "--model", str(model_dir), "--heads", "0.5", "--vocabulary_min_count", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "--vocabulary prunes the vocabulary alone" in err[0] and "--vocabulary_min_count is for --vocabulary" in err[1]


def test_run_seed_reaches_every_stage_after_the_teacher(tmp_path):
    """--seed varies the student's run, not its teacher: three seeds share one teacher; a stage's own seed wins."""
    from bertlite.cli.compress import CompressArguments, plan

    task, teacher = write_task(tmp_path / "reviews.csv", n=20), write_teacher(tmp_path / "teacher")
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(task, structured_pruning={"seed": 3})))
    stages = plan(CompressArguments(teacher=str(teacher), recipe=str(path), output_dir=str(tmp_path / "out"), seed=7)).stages
    seeds = {s.key: s.settings.get("seed") for s in stages}
    assert seeds["teacher_finetune"] is None and seeds["structured_pruning"] == 3
    assert all(seeds[k] == 7 for k in ("general_distillation", "augmentation", "distillation", "baseline")), seeds
    # Without --seed (and no seed in the recipe) each stage keeps its command's default.
    default = {s.key: s.settings.get("seed") for s in
               plan(CompressArguments(teacher=str(teacher), recipe=str(path), output_dir=str(tmp_path / "out"))).stages}
    assert default["distillation"] is None
    assert main(["compress", "--teacher", str(teacher), "--recipe", str(path), "--seed", "-1"]) == 1
