"""The home page under AppTest: what the tool is, intended use, data licenses, links to every page."""

from __future__ import annotations

from apphelpers import app_test, texts


def test_home_explains_the_tool_its_limits_and_links_every_page(weights_env) -> None:
    at = app_test()
    assert not at.exception, at.exception
    assert at.title[0].value == "BrainSeg Studio"
    assert "not a medical device" in texts(at.caption)
    body = texts(at.markdown)
    assert "Research and teaching only" in body and "diagnosis" in body
    for dataset, license_ in (("Figshare", "CC BY 4.0"), ("BraTS 2015", "CC BY-NC-SA 3.0"), ("LGG", "TCIA")):
        assert dataset in body and license_ in body
    links = [(link.proto.label, link.proto.page) for link in at.get("page_link")]
    assert links == [("Segment", "Segment"), ("Compare", "Compare"), ("Explain", "Explain"), ("Model zoo", "Model_zoo")]
    models = at.dataframe[0].value
    assert "unet.figshare" in set(models["model"])


def test_home_without_weights_says_how_to_get_them(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BRAINSEG_WEIGHTS_DIR", str(tmp_path))
    at = app_test()
    assert not at.exception
    assert "No trained weights" in texts(at.warning)
