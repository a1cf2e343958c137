"""`bertlite push DIR --repo-id ORG/NAME`: publish a compressed model folder on the Hub with a model card."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import BertliteError
from ..hub.push import REPO_ID

HELP = "Upload a compressed model folder (safetensors, tokenizer, configs) to the Hugging Face Hub with a generated model card."
# `bertlite push DIR ...`: the first argument, when it is not a flag, is the folder (see cli.parse_command).
POSITIONAL = "folder"


@dataclass
class PushOptions:
    """Fields other bertlite commands add to their DATACLASSES to push their output folder when they finish.

    Named push_* so that they never clash with TrainingArguments' own hub_* / push_to_hub fields (leave those
    off: the Trainer's push would also upload pickled training_args.bin and checkpoints).
    """

    push_repo_id: str | None = field(default=None, metadata={
        "help": "After saving, push the output folder to this Hub repo (ORG/NAME) with a generated model card. "
                "Token: HF_TOKEN or `hf auth login`."})
    push_private: bool = field(default=False, metadata={"help": "Create the Hub repo as private (an existing repo keeps its visibility)."})
    push_revision: str | None = field(default=None, metadata={"help": "Branch to push to (created if missing); default main."})
    push_license: str | None = field(default=None, metadata={
        "help": "License of the base model, for the card metadata (e.g. apache-2.0); known for bertlite's aliases."})
    push_timeout: float | None = field(default=None, metadata={
        "help": "Seconds the Hub may take to answer each request of the push (default: BERTLITE_HUB_TIMEOUT, else 60)."})

    def __post_init__(self):
        if self.push_repo_id is not None and not REPO_ID.match(self.push_repo_id):
            raise BertliteError(f"--push_repo_id {self.push_repo_id!r} is not a Hub repo id: use ORG/NAME.")


@dataclass
class PushArguments:
    folder: str = field(default=None, metadata={"help": "The model folder made by a bertlite command (it holds compression_config.json). Can be given first, without the flag."})
    repo_id: str = field(default=None, metadata={"help": "Hub repo to push to, ORG/NAME (or NAME for your own account). Created if missing."})
    private: bool = field(default=False, metadata={"help": "Create the repo as private (an existing repo keeps its visibility)."})
    revision: str = field(default=None, metadata={"help": "Branch to push to, created from main if missing; main when not given."})
    commit_message: str = field(default=None, metadata={"help": "Commit message; 'Upload compressed model with bertlite VERSION' when not given."})
    license: str = field(default=None, metadata={"help": "License of the base model for the card metadata, e.g. apache-2.0 (known for bertlite's model aliases, else 'unknown')."})
    no_card: bool = field(default=False, metadata={"help": "Push the folder's own README.md instead of generating the model card."})
    timeout: float | None = field(default=None, metadata={
        "help": "Seconds the Hub may take to answer each request (default: the BERTLITE_HUB_TIMEOUT environment "
                "variable, else 60). A Hub that stalls or drops the connection ends the push with one line; the "
                "folder is left as it was and the same command can be run again."})
    include: list[str] | None = field(default=None, metadata={
        "help": "Also upload the files matching these globs (repeat the flag or separate with commas), e.g. "
                "--include 'notes.md,*.csv'. Without it only what a model folder holds travels (weights, config, "
                "tokenizer, bertlite's records, card); other files are listed as skipped.", "action": "append"})
    dry_run: bool = field(default=False, metadata={
        "help": "Upload nothing and contact no Hub (no token needed): write the model card that would be pushed (to "
                "--card_path, else the folder's README.md, as a push does) and list the files a push would upload and "
                "those it would skip. --repo_id is optional then (the card names the folder)."})
    card_path: str | None = field(default=None, metadata={
        "help": "Write the generated card to this file instead of the folder's README.md (the Hub still gets it as README.md)."})

    def __post_init__(self):
        if not self.folder:
            raise ValueError("Give the model folder to push: bertlite push DIR --repo-id ORG/NAME (or --folder DIR).")
        if not self.repo_id and not self.dry_run:
            raise ValueError("Give the Hub repo to push to with --repo-id ORG/NAME.")
        if self.card_path and self.no_card:
            raise ValueError("--card_path writes the generated card; --no_card pushes the folder's own README.md instead.")


DATACLASSES = (PushArguments,)


def run(args: PushArguments) -> int:
    from ..hub import push_compressed

    # The token comes from HF_TOKEN or `hf auth login`, never from a flag: flags end up in shell history and logs.
    result = push_compressed(args.folder, args.repo_id, private=args.private, revision=args.revision,
                             commit_message=args.commit_message, license=args.license, model_card=not args.no_card,
                             include=args.include or (), timeout=args.timeout, dry_run=args.dry_run,
                             card_path=args.card_path)
    print(result.summary())
    return 0
