"""The Model zoo page under AppTest: leaderboard from metrics and leaderboard.json, Pareto plot, model cards."""

from __future__ import annotations

from apphelpers import SPIKING_TEST_MODEL, app_test, table_with, texts

PAGE = "app_pages/4_Model_zoo.py"


def test_leaderboard_tables_follow_the_committed_ranking_and_name_unranked_models(weights_env) -> None:
    from seg_core.leaderboard import build_leaderboard
    from seg_core.leaderboard import write_leaderboard as write_board

    board = build_leaderboard(weights_env)
    # Rank only unet.figshare, as if the other folders were shipped after the last `evaluate --all`.
    board["rows"] = [row for row in board["rows"] if row["id"] == "unet.figshare"]
    board["datasets"] = {"figshare": {**board["datasets"]["figshare"], "ranking": ["unet.figshare"]}}
    write_board(board, weights_env)
    try:
        at = app_test(PAGE)
        assert not at.exception, at.exception
        table = table_with(at, "test images")
        assert list(table["model"]) == ["unet.figshare"] and list(table["rank"]) == [1]
        assert 0.5 < table.iloc[0]["Dice per image"] < 1 and table.iloc[0]["test images"] > 0
        assert "Leaderboard: figshare" in texts(at.subheader)
        unranked = texts(at.info)
        assert SPIKING_TEST_MODEL in unranked and "not in the leaderboard" in unranked
        assert len(at.get("plotly_chart")) == 2, "Dice against energy and against latency"
        at.selectbox(key="zoo_card").set_value("unet.figshare").run()
        assert "unet.figshare: U-Net trained on figshare" in texts(at.markdown)
        architectures = table_with(at, "trained weights")
        assert {"tcsa_snn", "unet", "naive_prior"} <= set(architectures["architecture"])
    finally:
        (weights_env / "leaderboard.json").unlink()


def test_zoo_without_any_figures_degrades_gracefully(weights_env) -> None:
    at = app_test(PAGE)
    assert not at.exception
    at.selectbox(key="zoo_card").set_value("unet.twoseq").run()
    assert not at.exception
    assert "has no model card" in texts(at.info)
