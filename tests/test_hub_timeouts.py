"""A Hub that stalls or dies: pushes and loads end within the time limit with one clear line, never hang, never
leak a RuntimeError, and leave the local folder exactly as it was. The loopback server (tests/hub_server.py) is
made to misbehave: "stall" accepts a request and never answers, "die" drops the connection mid-upload."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from bertlite import BertliteError, load_compressed, push_compressed
from bertlite.record import CompressionConfig

sys.path.insert(0, os.path.dirname(__file__))
from conftest import save_tiny_classifier  # noqa: E402
from hub_server import HubServer  # noqa: E402

TOKEN = "hf_timeout_tests_0123456789abcdef"
LIMIT = 1.0  # seconds; every test here must end within a few of them


@pytest.fixture(autouse=True)
def _local_hub_mode(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("BERTLITE_HUB_TIMEOUT", raising=False)


@pytest.fixture
def hub():
    with HubServer(tokens={TOKEN: {"name": "alice"}}) as server:
        yield server


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = save_tiny_classifier(tmp_path_factory.mktemp("model") / "tiny", num_hidden_layers=1)
    CompressionConfig(base_model="minilm", task="rotten_tomatoes").save_pretrained(str(folder))
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def published(hub) -> dict[str, bytes]:
    return hub.files("alice/tiny") if "alice/tiny" in hub.repos else {}


def _push(hub, folder, **kwargs):
    return push_compressed(str(folder), "alice/tiny", token=TOKEN, endpoint=hub.url, **kwargs)


@pytest.mark.parametrize("where", ["whoami", "__lfs__", "/commit/"], ids=["first-call", "lfs-upload", "commit"])
def test_a_stalled_hub_ends_the_push_within_the_limit(hub, model_folder, where):
    before = snapshot(model_folder)
    hub.misbehave(where, "stall")
    start = time.monotonic()
    with pytest.raises(BertliteError, match=r"^The Hub at http://127\.0\.0\.1:\d+ did not answer within 1 s") as err:
        _push(hub, model_folder, timeout=LIMIT)
    assert time.monotonic() - start < 8  # one limit, not huggingface_hub's five retries (nor forever)
    assert "\n" not in str(err.value)
    assert snapshot(model_folder) == before  # not even README.md: the card is written once the Hub has the commit
    assert "model.safetensors" not in published(hub)


@pytest.mark.parametrize("where", ["__lfs__", "/commit/"], ids=["lfs-upload", "commit"])
def test_a_hub_that_dies_mid_upload_says_it_could_not_be_reached(hub, model_folder, where):
    before = snapshot(model_folder)
    hub.misbehave(where, "die")
    start = time.monotonic()
    with pytest.raises(BertliteError, match="Could not reach the Hub") as err:
        _push(hub, model_folder, timeout=LIMIT)
    assert time.monotonic() - start < 8
    assert "\n" not in str(err.value) and "Error while uploading" not in str(err.value)  # not hf's RuntimeError
    assert snapshot(model_folder) == before and "model.safetensors" not in published(hub)
    # Once the Hub is back, the same push completes.
    hub.behave()
    result = _push(hub, model_folder, timeout=LIMIT)
    assert result.changed and "model.safetensors" in hub.files("alice/tiny")


def test_cli_push_timeout_flag_and_environment_variable(hub, model_folder, monkeypatch, capsys):
    from huggingface_hub import constants

    from bertlite.cli import main

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub.misbehave("", "stall")
    start = time.monotonic()
    assert main(["push", str(model_folder), "--repo-id", "alice/tiny", "--timeout", "1"]) == 1
    monkeypatch.setenv("BERTLITE_HUB_TIMEOUT", "1.5")
    assert main(["push", str(model_folder), "--repo-id", "alice/tiny"]) == 1
    assert time.monotonic() - start < 12
    err = capsys.readouterr().err
    assert "did not answer within 1 s" in err and "did not answer within 1.5 s" in err
    assert "Traceback" not in err and TOKEN not in err

    for bad in (["--timeout", "0"], ["--timeout", "-3"]):
        assert main(["push", str(model_folder), "--repo-id", "alice/tiny", *bad]) == 1
        assert "timeout must be a number of seconds above 0" in capsys.readouterr().err
    monkeypatch.setenv("BERTLITE_HUB_TIMEOUT", "soon")
    assert main(["push", str(model_folder), "--repo-id", "alice/tiny"]) == 1
    assert "BERTLITE_HUB_TIMEOUT must be a number of seconds above 0, got 'soon'" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["compression_config.json", "model.safetensors", "/api/models/"],
                         ids=["record", "weights", "repo-info"])
def test_load_by_repo_id_from_a_stalled_hub_ends_within_the_limit(hub, model_folder, tmp_path, monkeypatch, where):
    _push(hub, model_folder)
    hub.misbehave(where, "stall")
    monkeypatch.setenv("BERTLITE_HUB_TIMEOUT", str(LIMIT))
    start = time.monotonic()
    with pytest.raises(BertliteError, match=r"did not answer within 1 s.*HF_HUB_OFFLINE=1"):
        load_compressed("alice/tiny", endpoint=hub.url, token=TOKEN, cache_dir=str(tmp_path / "cache"))
    assert time.monotonic() - start < 8  # not huggingface_hub's 60 s metadata retry
    hub.behave()
    model = load_compressed("alice/tiny", endpoint=hub.url, token=TOKEN, cache_dir=str(tmp_path / "cache"))
    assert model.compression_config.base_model == "minilm"


def test_a_users_client_factory_is_used_and_restored(hub, model_folder):
    """bertlite wraps huggingface_hub's HTTP client for its calls; a user's own factory (proxies, certificates)
    still makes the client, and is back in place afterwards."""
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils import _http

    made = []

    def users_factory():
        made.append(1)
        return _http.default_client_factory()

    set_client_factory(users_factory)
    try:
        assert _push(hub, model_folder).changed
        assert made
        assert _http._GLOBAL_CLIENT_FACTORY is users_factory
    finally:
        set_client_factory(_http.default_client_factory)


def test_record_files_are_unchanged_by_a_failed_push(hub, tmp_path, model_folder):
    """The README.md a successful push writes in the folder is written only once the Hub has the commit."""
    import shutil

    folder = Path(shutil.copytree(model_folder, tmp_path / "model"))
    (folder / "README.md").unlink(missing_ok=True)  # other tests' pushes wrote one
    hub.misbehave("/commit/", "die")
    with pytest.raises(BertliteError):
        _push(hub, folder, timeout=LIMIT)
    assert not (folder / "README.md").exists()
    hub.behave()
    result = _push(hub, folder, timeout=LIMIT)
    assert result.local_card and (folder / "README.md").is_file()
    assert json.loads((folder / "compression_config.json").read_text())["base_model"] == "minilm"
