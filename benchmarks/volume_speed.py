"""Seconds to segment one 155x240x240 BraTS volume: the project's default path against plain MONAI loops.

Run: ``python benchmarks/volume_speed.py --data-root ../shared/data [--model unet.figshare] [--repeats 5]
[--threads 2] [--isa both]``.

In one process, on the same T1c volume and the same threads, it times (median of ``--repeats``
runs after one warm-up):

* the project's default path, ``Segmenter.from_pretrained(model)(scan)``: what the app, CLI and API
  run (backend ``auto``; post-processing and tumor sizes included);
* the same with flip TTA on, on ONNX Runtime fp32 (where the default is the int8 graph), and on the
  torch backend (fp32, and bf16 where the CPU has it);
* the same network through MONAI ``SliceInferer`` in fp32, the loop a user would write: the volume
  normalised and resized in-plane to the net's input size, one 2D pass per slice, resized back;
* MONAI ``BasicUNet`` of (about) equal parameter count through the same ``SliceInferer``.

``--isa both`` runs the table twice: on the native CPU, and in a child process with
``ONEDNN_MAX_CPU_ISA=AVX2``, so torch's oneDNN kernels use neither AVX-512 nor bf16/AMX units, as on
most users' CPUs. That variable does not reach ONNX Runtime, whose MLAS kernels pick their own ISA.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seg_core.inference import Segmenter, fast_bfloat16  # noqa: E402
from seg_core.preprocess import resize_images  # noqa: E402
from seg_core.scans import load_scan  # noqa: E402
from seg_core.weights import load_model  # noqa: E402


def first_brats2018_case(data_root: Path) -> Path:
    from seg_core.data import BratsDataset, load_split

    dataset = BratsDataset(data_root)
    for group in load_split("brats")["test"]:
        if dataset.layout(group) != "2015":
            return dataset.folder_of(group)
    raise SystemExit("no BraTS 2018 case in the test split")


def median_seconds(run, repeats: int) -> float:
    run()  # warm-up: export, kernel choice, allocations
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def slice_inferer_run(network: torch.nn.Module, segmenter: Segmenter, scan) -> callable:
    """The plain MONAI loop over the same input the project's path sees."""
    from monai.inferers import SliceInferer

    channels = segmenter.prepare(scan)
    size = segmenter.input_size
    inferer = SliceInferer(roi_size=size, sw_batch_size=segmenter.batch_size, spatial_dim=0, progress=False)
    network = network.eval()

    @torch.inference_mode()
    def run() -> np.ndarray:
        normalized = segmenter.normalize.volume(channels)
        slices = np.stack([segmenter.normalize.slice(channels, d, normalized) for d in range(channels.shape[1])])
        small = resize_images(torch.from_numpy(slices), size)  # (D, C, h, w)
        logits = inferer(small.permute(1, 0, 2, 3)[None], network)[0]  # (1, D, h, w)
        probabilities = torch.sigmoid(resize_images(logits.permute(1, 0, 2, 3), channels.shape[2:]))
        return (probabilities[:, 0] >= 0.5).numpy()

    return run


def basic_unet_of_equal_size(parameters: int, in_channels: int) -> tuple[torch.nn.Module, int]:
    from monai.networks.nets import BasicUNet

    best = None
    for width in range(4, 65):
        features = (width, width, 2 * width, 4 * width, 8 * width, width)
        net = BasicUNet(spatial_dims=2, in_channels=in_channels, out_channels=1, features=features)
        count = sum(p.numel() for p in net.parameters())
        if best is None or abs(count - parameters) < abs(best[1] - parameters):
            best = (net, count)
    return best


def table(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    case = first_brats2018_case(Path(args.data_root))
    scan = load_scan(str(case))
    default = Segmenter.from_pretrained(args.model)
    loaded = load_model(args.model)
    parameters = sum(p.numel() for p in loaded.model.parameters())
    basic, basic_parameters = basic_unet_of_equal_size(parameters, len(default.modalities))
    rows: list[tuple[str, float]] = []
    rows.append(
        (
            f"project default ({default.backend.name}, flip TTA {default.flip_tta})",
            median_seconds(lambda: default(scan), args.repeats),
        )
    )
    tta = Segmenter(loaded, flip_tta=not default.flip_tta)
    rows.append((f"project, flip TTA {tta.flip_tta} ({tta.backend.name})", median_seconds(lambda: tta(scan), args.repeats)))
    if default.backend.name != "onnxruntime":
        fp32 = Segmenter(load_model(args.model), backend="onnxruntime", flip_tta=default.flip_tta)
        rows.append(("project on ONNX Runtime fp32", median_seconds(lambda: fp32(scan), args.repeats)))
    eager = Segmenter(load_model(args.model), backend="torch", bfloat16=False, flip_tta=default.flip_tta)
    rows.append(("project on torch eager fp32", median_seconds(lambda: eager(scan), args.repeats)))
    if fast_bfloat16(torch.device("cpu")):
        bf16 = Segmenter(load_model(args.model), backend="torch", bfloat16=True, flip_tta=default.flip_tta)
        rows.append(("project on torch bf16 autocast", median_seconds(lambda: bf16(scan), args.repeats)))
    same_net = load_model(args.model).model.float()
    rows.append(("same net, MONAI SliceInferer fp32", median_seconds(slice_inferer_run(same_net, default, scan), args.repeats)))
    rows.append(
        (
            f"MONAI BasicUNet {basic_parameters / 1e6:.2f} M params, SliceInferer fp32",
            median_seconds(slice_inferer_run(basic, default, scan), args.repeats),
        )
    )
    reference = rows[0][1]
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "native")
    bf16 = "yes" if fast_bfloat16(torch.device("cpu")) else "no"
    print(
        f"\n{args.model} ({parameters / 1e6:.2f} M params) on {case.name} {tuple(scan.shape)}, {args.threads} threads, "
        f"ONEDNN_MAX_CPU_ISA={isa}, native bf16: {bf16}, median of {args.repeats} runs"
    )
    print("| path | seconds | the default is faster by |")
    print("|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} | {seconds / reference:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--model", default="unet.figshare")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--isa", choices=("native", "avx2", "both"), default="both")
    args = parser.parse_args()
    if args.isa in ("native", "both"):
        table(args)
    if args.isa in ("avx2", "both"):
        command = [sys.executable, __file__, *sys.argv[1:], "--isa", "native"]
        subprocess.run(command, env={**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}, check=True)


if __name__ == "__main__":
    main()
