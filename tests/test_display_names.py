"""Internal names rendered for people (seg_core.display_names): no key, code name or file name shows through."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from seg_core.display_names import (
    METRIC_NAMES,
    dataset_name,
    file_description,
    layer_name,
    layer_names,
    metric_name,
    sequence_list,
    sequence_name,
)
from seg_core.models import create_model, get_spec, list_models

# What must never reach a person: snake_case keys, dotted module paths, file names, "unspecified".
INTERNAL = re.compile(r"[a-z]+_[a-z]+|\w+\.\d|\.json|\.safetensors|unspecified")


def test_sequences_read_as_radiologists_write_them():
    assert sequence_name("t1c") == "T1 contrast-enhanced"
    assert sequence_name("flair") == "FLAIR"
    assert sequence_name("T2") == "T2"
    assert sequence_name("unspecified") == "sequence not stated"
    assert sequence_list(("flair", "t1c")) == "FLAIR and T1 contrast-enhanced"
    assert sequence_list(("t1", "flair", "t1c")) == "T1, FLAIR and T1 contrast-enhanced"


def test_metric_keys_get_words_and_units():
    assert metric_name("energy_mj") == "Energy (mJ)"
    assert metric_name("latency_ms") == "Time (ms)"
    assert metric_name("volume_ml") == "Volume (mL)"
    # A key nobody listed still gets words and its unit, not the raw key.
    assert metric_name("warmup_latency_ms") == "Warmup latency (ms)"
    for key, words in METRIC_NAMES.items():
        assert not INTERNAL.search(words), (key, words)


def test_tumor_size_keys_all_have_words():
    from seg_core.postprocess import tumor_size

    sizes = tumor_size(np.ones((2, 4, 4), np.uint8), (1.0, 1.0, 1.0))
    for key in sizes:
        if key != "tumor_present":  # a per-slice list the pages draw, never label
            assert key in METRIC_NAMES, key


def test_leaderboard_keys_all_have_words():
    from seg_core.leaderboard import IMAGE_METRICS

    for metric in IMAGE_METRICS:
        assert metric_name(f"{metric}_mean") in METRIC_NAMES.values()
    for key in ("energy_mj", "latency_ms", "params", "sops", "macs", "train_energy_kwh"):
        assert key in METRIC_NAMES


def test_file_and_dataset_names_are_described():
    assert "metrics.json" not in file_description("weights/unet.figshare/metrics.json")
    assert file_description("metrics.json") == "the model's recorded test figures"
    assert dataset_name("brats") == "BraTS volumes"
    assert dataset_name("") == "unrecorded data"


def test_layer_paths_read_as_words():
    assert layer_name("stages.0") == "first block, early features"
    assert layer_name("stages.0.0") == "first block, early features, part 1"
    assert layer_name("stages.1") == "second block, middle features"
    assert layer_name("stages.3") == "fourth block, deep features"
    assert layer_name("bottleneck") == "bottleneck (deepest features)"
    assert layer_name("aspp.branches.1") == "multi-scale context (ASPP), branch 2"
    # LinkNet numbers its decoders backwards: the one that runs first is still the first step.
    names = layer_names(["encoders.0", "encoders.1", "decoders.1", "decoders.0"])
    assert names["decoders.1"] == "first decoder step, coarse outline"
    assert names["decoders.0"] == "second decoder step, fine detail"


@pytest.mark.parametrize("architecture", [m for m in list_models() if get_spec(m).trainable])
def test_every_explainable_layer_of_every_family_has_unique_plain_words(architecture: str):
    from seg_core.explain import gradcam_layers

    torch.manual_seed(0)
    spec = get_spec(architecture)
    model = create_model(architecture, **spec.lite_config).eval()
    paths = [info.name for info in gradcam_layers(model, torch.rand(1, 1, 64, 64))]
    names = layer_names(paths)
    assert len(set(names.values())) == len(paths)
    for path, words in names.items():
        assert not INTERNAL.search(words), (path, words)
        assert not re.search(r"[._]", path) or path not in words, (path, words)
