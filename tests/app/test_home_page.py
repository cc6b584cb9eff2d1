"""The home page under AppTest: what the tool is, intended use, data licenses, links to every page."""

from __future__ import annotations

import pytest
from apphelpers import REPO, app_test, texts


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
    assert links[-4:] == [("Segment", "Segment"), ("Compare", "Compare"), ("Explain", "Explain"), ("Model zoo", "Model_zoo")]
    models = at.dataframe[0].value
    assert "unet.figshare" in set(models["model"])


def test_home_without_weights_says_how_to_get_them(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BRAINSEG_WEIGHTS_DIR", str(tmp_path))
    at = app_test()
    assert not at.exception
    assert "No trained weights" in texts(at.warning)


def test_navigation_calls_the_main_page_home() -> None:
    from ui.frame import PAGES

    assert PAGES[0].title == "Home" and PAGES[0].default
    assert "st.navigation" in (REPO / "app.py").read_text()
    # A pages/ folder would put Streamlit back in file-based mode for a first visit straight to a page.
    assert not (REPO / "pages").exists()


def test_quick_start_comes_first_and_a_sample_opens_segmented(weights_env, monkeypatch) -> None:
    import streamlit as st

    monkeypatch.delenv("BRAINSEG_DATA_ROOT", raising=False)  # the phantoms only
    st.cache_resource.clear()  # the sample list is cached per data root
    at = app_test()
    assert at.subheader[0].value == "Quick start"
    samples = [button for button in at.button if button.key and button.key.startswith("home_sample_")]
    assert samples, "the quick start offers samples"
    at.button(key="home_sample_phantom-2d").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Segment"
    assert at.selectbox(key="segment_sample").value == "phantom-2d"
    assert len(at.image) == 1 and "phantom-2d" in at.image[0].proto.imgs[0].caption


@pytest.mark.data
def test_quick_start_offers_real_cases_of_each_kind_when_the_data_root_is_set(weights_env, data_root, monkeypatch) -> None:
    from ui.home import featured_samples

    monkeypatch.setenv("BRAINSEG_DATA_ROOT", str(data_root))
    sources = [info.source for info in featured_samples(str(data_root))]
    assert sources[0].startswith("brats") and "lgg" in sources and "figshare" in sources
