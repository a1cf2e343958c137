"""`bertlite prune` for structured pruning: option validation, dispatch to weight-level pruning, an end-to-end run."""

from __future__ import annotations

import json
import os

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

from bertlite.cli import main, parse_command
from bertlite.cli.prune import PruneArguments
from bertlite.errors import BertliteError


def parse(*argv):
    return parse_command("prune", list(argv))[1][0]


def test_method_is_inferred_from_the_options():
    assert parse("--model", "m", "--heads", "0.5").method == "structured"
    args = parse("--model", "m", "--ffn", "100", "--heads", "0.25")
    assert (args.method, args.ffn, args.heads) == ("structured", 100, 0.25) and isinstance(args.ffn, int)
    assert parse("--model", "m", "--sparsity", "0.5").method == "magnitude"
    args = parse("--model", "m", "--method", "lth", "--sparsity", "0.8", "--iterations", "3", "--rewind_step", "100",
                 "--include_embeddings", "--scope", "layer")
    assert (args.method, args.sparsity, args.iterations, args.rewind_step, args.include_embeddings, args.scope) == ("lth", 0.8, 3, 100, True, "layer")


@pytest.mark.parametrize("argv, message", [
    (["--heads", "0.5"], "--model is required"),
    (["--model", "m"], "Nothing to prune"),
    (["--model", "m", "--heads", "-0.5"], ">= 0"),
    (["--model", "m", "--ffn", "1.5"], "neither a fraction"),
    (["--model", "m", "--ffn", "2.5"], "neither a fraction"),
    (["--model", "m", "--heads", "1.0"], r"--heads=1.0 is neither a fraction .* integer \(e.g. 1\)"),
    (["--model", "m", "--heads", "half"], "--heads takes a fraction below 1 or a whole count"),
    (["--model", "m", "--heads", "0.5", "--sparsity", "0.5"], "--sparsity is for weight-level"),
    (["--model", "m", "--heads", "0.5", "--include_embeddings"], "^--include_embeddings is for weight-level pruning"),
    (["--model", "m", "--method", "structured", "--ffn", "3", "--iterations", "3", "--rewind_step", "5",
      "--obd_batch_size", "4", "--allow_layer_collapse", "--include_classifier"],
     "^--iterations, --rewind_step, --include_classifier, --obd_batch_size, --allow_layer_collapse are for weight-level "
     "pruning .*, not structured pruning: remove them"),
    (["--model", "m", "--method", "obd", "--heads", "0.5"], "--heads is for structured pruning"),
    (["--model", "m", "--sparsity", "0.5", "--criterion", "fisher", "--schedule", "gradual", "--min_heads_per_layer", "0",
      "--min_ffn_per_layer", "4"], "^--criterion, --min_heads_per_layer, --min_ffn_per_layer, --schedule are for "
                                   "structured pruning .*, not --method magnitude"),
    (["--model", "m", "--sparsity", "0.5", "--rewind_step", "10"], "--rewind_step is for --method lth, not --method magnitude"),
    (["--model", "m", "--method", "lth", "--sparsity", "0.5", "--obd_batch_size", "8"], "--obd_batch_size is for --method obd"),
    (["--model", "m", "--method", "synflow"], "needs --sparsity"),
    (["--model", "m", "--heads", "0.5", "--criterion", "random"], "--criterion must be"),
    (["--model", "m", "--heads", "0.5", "--scope", "row"], "--scope"),
    (["--model", "m", "--heads", "0.5", "--min_heads_per_layer", "-1"], ">= 0"),
])
def test_bad_options_give_clear_errors(argv, message):
    with pytest.raises(BertliteError, match=message):
        parse(*argv)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A tiny BERT classifier with the packaged MiniLM tokenizer (random weights: structure, not accuracy)."""
    from bertlite.loading import load_tokenizer

    tokenizer = load_tokenizer("minilm")
    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        vocab_size=tokenizer.vocab_size, max_position_embeddings=128)
    folder = tmp_path_factory.mktemp("tiny")
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_prune_command_end_to_end(tiny_folder, tmp_path, capsys):
    out = tmp_path / "pruned"
    code = main(["prune", "--model", str(tiny_folder), "--heads", "0.5", "--ffn", "32", "--criterion", "fisher",
                 "--max_train_examples", "24", "--max_eval_examples", "8", "--importance_examples", "16",
                 "--batch_size", "8", "--output_dir", str(out), "--recover", "--epochs", "1"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "total    8 -> 4" in printed and "128 -> 96" in printed
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.model_type == "bertlite" and sum(model.config.layer_num_attention_heads) == 4
    assert (out / "tokenizer.json").is_file()
    record = json.loads((out / "compression_config.json").read_text())
    step = record["steps"][0]
    assert step["method"] == "structured_pruning" and step["params"]["criterion"] == "fisher"
    assert step["params"]["parameters_before"] - step["params"]["parameters_after"] == sum(
        p.numel() for p in BertForSequenceClassification.from_pretrained(tiny_folder).parameters()) - sum(
        p.numel() for p in model.parameters())
    assert {"accuracy_before", "accuracy_pruned", "accuracy_recovered"} <= set(record["metrics"]["structured_pruning"])
    recovery = record["steps"][-1] if record["steps"][-1]["method"] == "distillation" else None
    assert recovery and recovery["params"]["attention_weight"] == 0.0 and recovery["params"]["num_train_epochs"] == 1.0
    # the recovery settings weight pruning uses too (bertlite.pruning.recovery)
    assert (recovery["params"]["weight_decay"], recovery["params"]["train_sampling_strategy"]) == (0.01, "group_by_length")
    assert not (out / "recovery").exists()


def test_gradual_schedule_prunes_while_distilling(tiny_folder, tmp_path, capsys):
    out = tmp_path / "gradual"
    code = main(["prune", "--model", str(tiny_folder), "--heads", "2", "--ffn", "0.25", "--schedule", "gradual",
                 "--epochs", "2", "--max_train_examples", "32", "--max_eval_examples", "8", "--batch_size", "8",
                 "--output_dir", str(out)])
    assert code == 0
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert sum(model.config.layer_num_attention_heads) == 6 and sum(model.config.layer_intermediate_sizes) == 96
    record = json.loads((out / "compression_config.json").read_text())
    assert [s["method"] for s in record["steps"]] == ["structured_pruning", "distillation"]
    history = record["steps"][0]["params"]["removed"]["history"]
    assert history[-1]["heads_removed"] == 2 and history[-1]["ffn_removed"] == 32


def test_impossible_targets_give_a_clear_error_and_write_nothing(tiny_folder, tmp_path, capsys):
    code = main(["prune", "--model", str(tiny_folder), "--heads", "9", "--criterion", "magnitude", "--no_evaluate",
                 "--max_train_examples", "8", "--max_eval_examples", "8", "--output_dir", str(tmp_path / "x")])
    assert code == 1
    assert "more attention heads than the model has (8)" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_default_output_folder_is_next_to_a_local_model_or_named_after_a_hub_id(tmp_path):
    from bertlite.loading import default_output_dir

    folder = tmp_path / "runs" / "student"
    folder.mkdir(parents=True)
    assert default_output_dir(f"{folder}/", "pruned") == f"{folder}-pruned"
    assert default_output_dir(str(folder)) == f"{folder}-int8"
    assert default_output_dir("org/model", "pruned") == os.path.join(".", "org--model-pruned")


def test_weight_method_run_writes_next_to_its_input_and_says_how_to_load_it(tiny_folder, capsys):
    from bertlite import load_compressed

    code = main(["prune", "--model", str(tiny_folder), "--method", "synflow", "--sparsity", "0.5", "--iterations", "10",
                 "--task", "", "--no_evaluate"])
    assert code == 0
    out = f"{tiny_folder}-pruned"
    assert f"Load it with: bertlite.load_compressed({out!r})" in capsys.readouterr().out.splitlines()[-1]
    model = load_compressed(out)
    assert model.compression_config.methods[-1] == "weight_pruning"
    assert abs(json.loads(open(os.path.join(out, "sparsity_report.json")).read())["sparsity"] - 0.5) < 1e-3
