"""Weights on the Hugging Face Hub, against a mock Hub on 127.0.0.1: download, cache, offline, integrity, publish.

Also the sha256 record that ``save_pretrained`` writes and ``load_model`` checks for local folders.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seg_core.models import create_model
from seg_core.weights import (
    CARD_NAME,
    CONFIG_NAME,
    WEIGHTS_DIR,
    WEIGHTS_NAME,
    HubWeights,
    WeightsError,
    load_model,
    publish,
    read_sha256_record,
    record_sha256,
    save_pretrained,
    sha256_file,
    verify_sha256,
)
from seg_core.weights.layout import INT8_CALIBRATION_NAME

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mock_hub import MockHub  # noqa: E402
from tiny_models import UNNORMALIZED, weights_config  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CONFIG = weights_config("unet", {"width": 4, "in_channels": 1}, 32, id="unet.tiny", **UNNORMALIZED)


@pytest.fixture(autouse=True)
def _online(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests decide offline mode themselves, whatever the developer's shell says.
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture
def hub():
    with MockHub() as server:
        yield server


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_pretrained(
        create_model("unet", width=4, in_channels=1).eval(), CONFIG, tmp_path_factory.mktemp("w") / "unet.tiny"
    )


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# sha256 record (local)
# --------------------------------------------------------------------------------------------


def test_save_pretrained_records_the_sha256_in_config_and_card(tmp_path: Path) -> None:
    folder = save_pretrained(create_model("unet", width=4, in_channels=1), CONFIG, tmp_path / "unet.tiny", card="# card\n")
    config = json.loads((folder / CONFIG_NAME).read_text())
    digest = sha256_file(folder / WEIGHTS_NAME)
    assert config["sha256"] == {WEIGHTS_NAME: digest}
    assert f"| `{WEIGHTS_NAME}` | `{digest}` |" in (folder / CARD_NAME).read_text()
    assert read_sha256_record(folder) == config["sha256"]


def test_model_card_rendered_from_config_lists_the_digests(tiny_folder: Path) -> None:
    from seg_core.model_card import render_model_card

    config = json.loads((tiny_folder / CONFIG_NAME).read_text())
    card = render_model_card(config, {})
    assert config["sha256"][WEIGHTS_NAME] in card and card.index("## Files and checksums") < card.index("## Limits")


def test_tampered_local_weights_are_refused(tiny_folder: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(tiny_folder, tmp_path / "unet.tiny")
    data = bytearray((folder / WEIGHTS_NAME).read_bytes())
    data[-1] ^= 0x01  # one bit of one weight
    (folder / WEIGHTS_NAME).write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="does not match its recorded sha256"):
        load_model(folder)


def test_card_and_config_must_agree(tiny_folder: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(tiny_folder, tmp_path / "unet.tiny")
    (folder / CARD_NAME).write_text(f"# t\n## Files and checksums\n| `{WEIGHTS_NAME}` | `{'0' * 64}` |\n")
    with pytest.raises(WeightsError, match="lists other sha256 digests"):
        load_model(folder)


def test_folder_without_record_loads_locally_and_record_sha256_backfills_metadata_only(tiny_folder: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(tiny_folder, tmp_path / "unet.tiny")
    config = json.loads((folder / CONFIG_NAME).read_text())
    del config["sha256"]
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    (folder / CARD_NAME).write_text("# unet.tiny\n\n## Test figures\nnone\n\n## Limits\n- a few\n")
    assert verify_sha256(folder) == {}
    load_model(folder)  # older folders load unchecked
    with pytest.raises(WeightsError, match="no sha256 record"):
        verify_sha256(folder, required=True)
    before = (folder / WEIGHTS_NAME).read_bytes()
    record = record_sha256(folder)
    assert (folder / WEIGHTS_NAME).read_bytes() == before
    card = (folder / CARD_NAME).read_text()
    assert card.startswith("# unet.tiny\n\n## Test figures\nnone\n\n## Files and checksums") and card.endswith(
        "## Limits\n- a few\n"
    )
    assert record_sha256(folder) == record and (folder / CARD_NAME).read_text() == card  # idempotent
    assert verify_sha256(folder, required=True) == record


def test_shipped_weights_carry_a_matching_record() -> None:
    folder = WEIGHTS_DIR / "unet.figshare"
    assert verify_sha256(folder, required=True) == {WEIGHTS_NAME: sha256_file(folder / WEIGHTS_NAME)}


def test_local_weights_never_touch_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("local weights must not open a connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert load_model("unet.figshare").source == "local"


# --------------------------------------------------------------------------------------------
# Hub references
# --------------------------------------------------------------------------------------------


def test_hub_reference_must_be_explicit_and_pinned() -> None:
    ref = HubWeights.parse("hub:brainseg/unet-figshare@" + "a" * 40)
    assert ref.repo_id == "brainseg/unet-figshare" and ref.pinned and str(ref) == "hub:brainseg/unet-figshare@" + "a" * 40
    assert not HubWeights.parse("hub:brainseg/unet@v1.0").pinned
    with pytest.raises(WeightsError, match="pin one"):
        HubWeights.parse("hub:brainseg/unet-figshare")
    for bad in ("hub:no-org@main", "hub:a/b/c@main", "hub:../x@main", "hub:a/b@../main"):
        with pytest.raises(WeightsError):
            HubWeights.parse(bad)
    # Without the prefix a string is an id or a path, never a Hub repo.
    with pytest.raises(WeightsError, match="neither a weights id"):
        load_model("brainseg/unet-figshare")
    assert "hf_secret" not in repr(HubWeights("a/b", "main", token="hf_secret"))  # tokens never reach logs


# --------------------------------------------------------------------------------------------
# Download from the mock Hub
# --------------------------------------------------------------------------------------------


def test_download_load_and_reuse_the_cache_offline(hub: MockHub, tiny_folder: Path, tmp_path: Path, monkeypatch) -> None:
    sha = hub.add_commit("brainseg/unet-tiny", folder_files(tiny_folder))
    cache = tmp_path / "cache"
    loaded = load_model(f"hub:brainseg/unet-tiny@{sha}", endpoint=hub.endpoint, cache_dir=cache)
    assert same_weights(loaded.model, load_model(tiny_folder).model)
    assert loaded.source == f"hub:brainseg/unet-tiny@{sha}" and loaded.folder.name == sha
    assert str(loaded.folder).startswith(str(cache)) and hub.fetched(WEIGHTS_NAME) == 1

    # Pinned to a commit and cached: no request at all, even online.
    count = len(hub.requests)
    load_model(HubWeights("brainseg/unet-tiny", sha, endpoint=hub.endpoint, cache_dir=cache))
    assert len(hub.requests) == count

    # Offline, a branch name resolves through the cache's refs; nothing is asked of the Hub.
    load_model("hub:brainseg/unet-tiny@main", endpoint=hub.endpoint, cache_dir=cache)  # caches refs/main
    count = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = load_model("hub:brainseg/unet-tiny@main", endpoint=hub.endpoint, cache_dir=cache)
    assert same_weights(offline.model, loaded.model) and len(hub.requests) == count


def test_offline_without_cache_is_a_clear_error(hub: MockHub, tiny_folder: Path, tmp_path: Path, monkeypatch) -> None:
    sha = hub.add_commit("brainseg/unet-tiny", folder_files(tiny_folder))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError, match="HF_HUB_OFFLINE is set"):
        load_model(f"hub:brainseg/unet-tiny@{sha}", endpoint=hub.endpoint, cache_dir=tmp_path / "cache")
    assert hub.requests == []


def test_unreachable_hub_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="cannot reach the Hub"):
        load_model("hub:brainseg/unet-tiny@main", endpoint=f"http://127.0.0.1:{free_port()}", cache_dir=tmp_path / "cache")


def test_unreachable_hub_falls_back_to_the_cache(hub: MockHub, tiny_folder: Path, tmp_path: Path) -> None:
    hub.add_commit("brainseg/unet-tiny", folder_files(tiny_folder))
    cache = tmp_path / "cache"
    first = load_model("hub:brainseg/unet-tiny@main", endpoint=hub.endpoint, cache_dir=cache)
    again = load_model("hub:brainseg/unet-tiny@main", endpoint=f"http://127.0.0.1:{free_port()}", cache_dir=cache)
    assert same_weights(first.model, again.model)


def test_missing_file_revision_and_repo(hub: MockHub, tiny_folder: Path, tmp_path: Path) -> None:
    files = folder_files(tiny_folder)
    del files[WEIGHTS_NAME]
    sha = hub.add_commit("brainseg/no-weights", files)
    with pytest.raises(WeightsError, match="has no model.safetensors"):
        load_model(f"hub:brainseg/no-weights@{sha}", endpoint=hub.endpoint, cache_dir=tmp_path / "c")
    with pytest.raises(WeightsError, match="no revision 'v9'"):
        load_model("hub:brainseg/no-weights@v9", endpoint=hub.endpoint, cache_dir=tmp_path / "c")
    with pytest.raises(WeightsError, match="no Hub repo 'brainseg/nothing'"):
        load_model("hub:brainseg/nothing@main", endpoint=hub.endpoint, cache_dir=tmp_path / "c")


def test_optional_files_may_be_missing(hub: MockHub, tiny_folder: Path, tmp_path: Path) -> None:
    files = {name: folder_files(tiny_folder)[name] for name in (CONFIG_NAME, WEIGHTS_NAME)}
    sha = hub.add_commit("brainseg/bare", files)
    assert load_model(f"hub:brainseg/bare@{sha}", endpoint=hub.endpoint, cache_dir=tmp_path / "c").config["id"] == "unet.tiny"


def test_tampered_hub_file_is_rejected(hub: MockHub, tiny_folder: Path, tmp_path: Path) -> None:
    files = folder_files(tiny_folder)
    data = bytearray(files[WEIGHTS_NAME])
    data[-2] ^= 0xFF
    files[WEIGHTS_NAME] = bytes(data)  # config.json still records the original digest
    sha = hub.add_commit("brainseg/tampered", files)
    with pytest.raises(WeightsError, match="does not match its recorded sha256"):
        load_model(f"hub:brainseg/tampered@{sha}", endpoint=hub.endpoint, cache_dir=tmp_path / "c")


def test_tampered_cache_is_rejected(hub: MockHub, tiny_folder: Path, tmp_path: Path) -> None:
    sha = hub.add_commit("brainseg/unet-tiny", folder_files(tiny_folder))
    loaded = load_model(f"hub:brainseg/unet-tiny@{sha}", endpoint=hub.endpoint, cache_dir=tmp_path / "c")
    blob = (loaded.folder / WEIGHTS_NAME).resolve()
    data = bytearray(blob.read_bytes())
    data[100] ^= 0x10
    blob.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="does not match its recorded sha256"):
        load_model(f"hub:brainseg/unet-tiny@{sha}", endpoint=hub.endpoint, cache_dir=tmp_path / "c")


def test_hub_weights_without_a_record_are_refused(hub: MockHub, tiny_folder: Path, tmp_path: Path) -> None:
    files = folder_files(tiny_folder)
    config = json.loads(files[CONFIG_NAME])
    del config["sha256"]
    files[CONFIG_NAME] = json.dumps(config).encode()
    files.pop(CARD_NAME, None)
    sha = hub.add_commit("brainseg/unrecorded", files)
    with pytest.raises(WeightsError, match="no sha256 record"):
        load_model(f"hub:brainseg/unrecorded@{sha}", endpoint=hub.endpoint, cache_dir=tmp_path / "c")


# --------------------------------------------------------------------------------------------
# Publish to the mock Hub
# --------------------------------------------------------------------------------------------


def test_publish_then_load_the_pinned_commit(hub: MockHub, tiny_folder: Path, tmp_path: Path) -> None:
    result = publish(tiny_folder, "brainseg/unet-tiny", endpoint=hub.endpoint, token=False)
    assert result["load"] == f"hub:brainseg/unet-tiny@{result['commit']}"
    assert hub.files("brainseg/unet-tiny", result["commit"]) == {
        name: data
        for name, data in folder_files(tiny_folder).items()
        if name in (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, "metrics.json")
    }
    loaded = load_model(result["load"], endpoint=hub.endpoint, cache_dir=tmp_path / "c")
    assert same_weights(loaded.model, load_model(tiny_folder).model)
    # Publishing again to an existing repo makes a new commit on it.
    assert publish(tiny_folder, "brainseg/unet-tiny", endpoint=hub.endpoint, token=False)["commit"] != result["commit"]


def test_publish_refuses_weights_that_do_not_match_their_record(hub: MockHub, tiny_folder: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(tiny_folder, tmp_path / "unet.tiny")
    (folder / WEIGHTS_NAME).write_bytes((folder / WEIGHTS_NAME).read_bytes()[:-1] + b"\x00")
    with pytest.raises(WeightsError, match="recorded sha256"):
        publish(folder, "brainseg/unet-tiny", endpoint=hub.endpoint, token=False)
    assert hub.repos == {}


def test_int8_calibration_ranges_travel_with_the_weights(hub: MockHub, tiny_folder: Path, tmp_path: Path) -> None:
    # The int8 graph is built from these ranges at first use (seg_core.int8_graph), so they must come along.
    folder = shutil.copytree(tiny_folder, tmp_path / "unet.tiny")
    ranges = folder / INT8_CALIBRATION_NAME
    ranges.write_text('{"CLS": "TensorsData", "data": {}}')
    config = json.loads((folder / CONFIG_NAME).read_text())
    (folder / CONFIG_NAME).write_text(json.dumps({**config, "int8": {"accepted": True, "sha256": "0" * 64}}))
    with pytest.raises(WeightsError, match="int8"):  # ranges that are not the validated ones stay home
        publish(folder, "brainseg/unet-int8", endpoint=hub.endpoint, token=False)
    (folder / CONFIG_NAME).write_text(json.dumps({**config, "int8": {"accepted": True, "sha256": sha256_file(ranges)}}))
    result = publish(folder, "brainseg/unet-int8", endpoint=hub.endpoint, token=False)
    assert hub.files("brainseg/unet-int8", result["commit"])[INT8_CALIBRATION_NAME] == ranges.read_bytes()
    loaded = load_model(result["load"], endpoint=hub.endpoint, cache_dir=tmp_path / "c")
    assert (loaded.folder / INT8_CALIBRATION_NAME).read_bytes() == ranges.read_bytes()


def test_publish_command_line(hub: MockHub, tiny_folder: Path) -> None:
    env = {**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_TOKEN", None)
    args = [sys.executable, "-m", "seg_core", "publish", str(tiny_folder), "--repo", "brainseg/cli", "--endpoint", hub.endpoint]
    result = subprocess.run([*args, "--json"], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["load"] == f"hub:brainseg/cli@{hub.repos['brainseg/cli']['refs']['main']}"
    bad = subprocess.run(
        [*args[:-2], "--endpoint", f"http://127.0.0.1:{free_port()}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr
