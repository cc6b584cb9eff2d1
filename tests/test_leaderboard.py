"""The leaderboard: measured end to end on real test slices, and the committed file kept in sync."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seg_core.leaderboard import (
    LEADERBOARD_NAME,
    PUBLISHED,
    README_END,
    README_START,
    build_leaderboard,
    evaluate_all,
    read_leaderboard,
    render_markdown,
    update_readme,
)
from seg_core.models import create_model
from seg_core.weights import WEIGHTS_DIR, json_safe, list_weights

REPO = Path(__file__).resolve().parent.parent


def _tiny_weights(weights_dir: Path, model_id: str, arch: str, model_config: dict, spiking: bool = False) -> None:
    from tiny_models import PERCENTILE, save_tiny_model  # tests/, on sys.path under pytest

    fields = {"id": model_id, "normalization": PERCENTILE, "threshold": 0.5, "dataset": "figshare", "spiking": spiking}
    metrics = {"training": {"val_dice_per_image": 0.1}}
    save_tiny_model(weights_dir / model_id, arch, {**model_config, "in_channels": 1}, 32, metrics=metrics, **fields)


@pytest.mark.data
def test_evaluate_all_measures_writes_and_ranks(data_root: Path, tmp_path: Path) -> None:
    weights_dir = tmp_path / "weights"
    _tiny_weights(weights_dir, "unet.figshare", "unet", {"width": 4})
    _tiny_weights(weights_dir, "csa_snn.figshare", "csa_snn", {"width": 4, "time_steps": 1}, spiking=True)
    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n{README_START}\nold\n{README_END}\nafter\n")

    board = evaluate_all(data_root, weights_dir, readme=readme, report=lambda line: None)

    assert [row["id"] for row in board["rows"]] == sorted(
        ["unet.figshare", "csa_snn.figshare"], key=lambda i: -next(r["dice_mean"] for r in board["rows"] if r["id"] == i)
    )
    for row in board["rows"]:
        metrics = json.loads((weights_dir / row["id"] / "metrics.json").read_text())
        test = metrics["test:figshare"]
        # The rows are the recorded measurements, not re-typed numbers.
        assert row["dice_mean"] == test["dice_mean"] and row["test_images"] == test["n"] > 300
        assert 0.0 <= row["dice_mean"] <= 1.0
        if row["architecture"] == "unet":
            assert row["params"] == sum(p.numel() for p in create_model("unet", in_channels=1, width=4).parameters())
        assert row["energy_mj"] > 0 and row["latency_ms"] > 0 and row["macs"] > 0
        card = (weights_dir / row["id"] / "README.md").read_text()
        assert "Inference cost" in card and "Test figures" in card
    spiking = next(row for row in board["rows"] if row["spiking"])
    # Only the layer that sees the image multiplies; later layers run on spikes (counted as SOPs, possibly
    # none for an untrained net whose neurons stay silent).
    cost = json.loads((weights_dir / spiking["id"] / "metrics.json").read_text())["inference_cost"]
    assert cost["dense_macs"] < cost["macs"] and spiking["sops"] >= 0
    assert read_leaderboard(weights_dir) == json.loads((weights_dir / LEADERBOARD_NAME).read_text())
    text = readme.read_text()
    assert "old" not in text and "`unet.figshare`" in text and text.endswith(f"{README_END}\nafter\n")


def test_render_lists_published_figures_with_the_caveat() -> None:
    board = {"rows": [], "published": list(PUBLISHED), "published_note": "not comparable because ..."}
    text = render_markdown(board)
    assert "0.779" in text and "0.905" in text and "not comparable" in text


def test_update_readme_without_markers_leaves_it(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    assert not update_readme({"rows": [], "published": [], "published_note": ""}, readme)
    assert readme.read_text() == "no markers\n"


def test_committed_leaderboard_matches_the_shipped_metrics() -> None:
    """`weights/leaderboard.json` is regenerated from metrics.json, never edited by hand."""
    committed = read_leaderboard(WEIGHTS_DIR)
    if committed is None:
        pytest.fail("weights/leaderboard.json is missing: run python -m seg_core evaluate --all --data-root ../shared/data")
    fresh = json.loads(json.dumps(json_safe(build_leaderboard(WEIGHTS_DIR))))
    assert committed["rows"] == fresh["rows"]
    assert {row["id"] for row in committed["rows"]} == set(list_weights(WEIGHTS_DIR))
    readme = (REPO / "README.md").read_text()
    assert render_markdown(committed) in readme


def test_training_cost_counts_a_fine_tune_and_the_run_it_started_from() -> None:
    from seg_core.leaderboard import _training_cost

    fine_tune = {
        "wall_time_s": 600.0,
        "energy": {"energy_kwh": 0.001},
        "initial": {"wall_time_s": 1200.0, "energy": {"energy_kwh": 0.002}},
    }
    cost = _training_cost(fine_tune, None)
    assert cost["train_minutes"] == pytest.approx(30.0) and cost["train_energy_kwh"] == pytest.approx(0.003)
    # An initial run that was not metered makes the total unknown rather than too small.
    unmetered = {"wall_time_s": 600.0, "energy": {"energy_kwh": 0.001}, "initial": {"wall_time_s": 1200.0}}
    assert _training_cost(unmetered, None)["train_energy_kwh"] is None
    # Runs from before the totals were recorded fall back to the config's elapsed time.
    assert _training_cost({}, 120.0) == {"train_minutes": pytest.approx(2.0), "train_energy_kwh": None}


def test_readme_zoo_page_and_api_show_the_same_ranking_per_dataset() -> None:
    import re

    from fastapi.testclient import TestClient

    from seg_core.api import create_app
    from seg_core.leaderboard import read_leaderboard
    from ui.zoo import leaderboard_tables

    board = read_leaderboard()
    assert board is not None and board["datasets"], "weights/leaderboard.json is committed"
    expected = {dataset: entry["ranking"] for dataset, entry in board["datasets"].items()}
    # Each ranking is sorted by the dataset's primary figure: per patient for volumes, per image for slices.
    rows = {row["id"]: row for row in board["rows"]}
    for dataset, ranking in expected.items():
        figures = [rows[model_id]["primary_mean"] for model_id in ranking]
        known = [figure for figure in figures if figure is not None]
        assert known == sorted(known, reverse=True), dataset
        assert {rows[model_id]["primary_metric"] for model_id in ranking} == {board["datasets"][dataset]["primary_metric"]}

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme.split("<!-- leaderboard:start -->")[1].split("<!-- leaderboard:end -->")[0]
    in_readme: dict[str, list[str]] = {}
    for dataset, text in re.findall(r"\*\*(\w+)\*\*: ranked by(.*?)(?=\n\*\*\w+\*\*: ranked by|\Z)", block, re.S):
        in_readme[dataset] = re.findall(r"^\| `([^`]+)`", text, re.M)
    assert in_readme == expected

    page = {dataset: [row["id"] for row in table["rows"]] for dataset, table in leaderboard_tables(board).items()}
    assert page == expected

    listed = TestClient(create_app()).get("/models").json()
    for dataset, ranking in expected.items():
        api = [model["id"] for model in listed if model["dataset"] == dataset and model["ranking"]]
        assert api == ranking, dataset
        assert [model["ranking"]["rank"] for model in listed if model["id"] in ranking] == list(range(1, len(ranking) + 1))


def test_recorded_figures_are_standard_json_and_the_card_follows(tmp_path: Path) -> None:
    from seg_core.weights import forget_metrics, read_leaderboard, record_metrics, write_leaderboard

    _tiny_weights(tmp_path, "unet.figshare", "unet", {"width": 4})
    folder = tmp_path / "unet.figshare"
    record_metrics(folder, "training", {"epochs_run": 3, "history": [float("nan")]}, merge=True)
    text = (folder / "metrics.json").read_text()
    assert "NaN" not in text
    training = json.loads(text)["training"]
    assert training == {"val_dice_per_image": 0.1, "epochs_run": 3, "history": [None]}  # merged, nan as null
    assert "Ran 3 epochs" not in (folder / "README.md").read_text()  # rewritten from the metrics: no stop reason recorded
    record_metrics(folder, "training", {"epochs_run": 4, "stopped": "epochs"})
    assert json.loads((folder / "metrics.json").read_text())["training"] == {"epochs_run": 4, "stopped": "epochs"}  # replaced
    assert "Ran 4 epochs" in (folder / "README.md").read_text()
    assert forget_metrics(folder, "training") and not forget_metrics(folder, "training")
    assert "training" not in json.loads((folder / "metrics.json").read_text())
    assert "Ran 4 epochs" not in (folder / "README.md").read_text()

    assert read_leaderboard(tmp_path) is None
    write_leaderboard({"rows": [{"dice_mean": float("inf")}]}, tmp_path)
    assert read_leaderboard(tmp_path) == {"rows": [{"dice_mean": None}]}


def test_spiking_rows_state_the_time_steps_their_model_runs_with() -> None:
    from seg_core.weights import read_config

    board = read_leaderboard(WEIGHTS_DIR)
    spiking = [row for row in board["rows"] if row["spiking"]]
    assert spiking, "no spiking model shipped"
    for row in spiking:
        config = read_config(WEIGHTS_DIR / row["id"])
        built = create_model(row["architecture"], **config.get("model_config", {}))
        assert row["time_steps"] == built.time_steps >= 1, row["id"]
    assert any(row["time_steps"] >= 4 for row in spiking), "issue 15: at least one shipped SNN runs T >= 4 steps"
    table = render_markdown(board)
    for row in spiking:
        assert f"| `{row['id']}` | yes (T={row['time_steps']}) |" in table, row["id"]
