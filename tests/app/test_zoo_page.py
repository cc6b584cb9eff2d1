"""The Model zoo page under AppTest: leaderboard from metrics and leaderboard.json, Pareto plot, model cards."""

from __future__ import annotations

from apphelpers import SPIKING_TEST_MODEL, app_test, table_with, texts, write_leaderboard

PAGE = "pages/4_Model_zoo.py"


def test_leaderboard_pareto_and_cards(weights_env) -> None:
    write_leaderboard(
        weights_env,
        [
            {"id": SPIKING_TEST_MODEL, "dice_mean": 0.42, "energy_mj": 0.5, "spiking": True},
            {"id": "gone.weights", "dice_mean": 0.9},
        ],
    )
    try:
        at = app_test(PAGE)
        assert not at.exception, at.exception
        table = table_with(at, "test images")
        assert set(table["model"]) == {"unet.figshare", SPIKING_TEST_MODEL, "unet.twoseq"}  # shipped weights only
        figshare = table[table["model"] == "unet.figshare"].iloc[0]
        assert 0.5 < figshare["Dice"] < 1 and figshare["test images"] > 0
        # Figures come from each folder's metrics.json: a model never evaluated shows a blank, even when a
        # stale leaderboard.json claims a figure for it.
        assert table[table["model"] == SPIKING_TEST_MODEL].iloc[0]["Dice"] != 0.42
        if at.button:  # costs not recorded yet: measure them on request
            at.button(key="zoo_measure").click().run()
            assert not at.exception
        assert at.get("plotly_chart"), texts(at.info)
        at.selectbox(key="zoo_card").set_value("unet.figshare").run()
        assert "unet.figshare: U-Net trained on figshare" in texts(at.markdown)
        architectures = table_with(at, "architecture")
        assert {"tcsa_snn", "unet", "naive_prior"} <= set(architectures["architecture"])
    finally:
        (weights_env / "leaderboard.json").unlink()


def test_zoo_without_any_figures_degrades_gracefully(weights_env) -> None:
    at = app_test(PAGE)
    assert not at.exception
    at.selectbox(key="zoo_card").set_value("unet.twoseq").run()
    assert not at.exception
    assert "has no model card" in texts(at.info)
