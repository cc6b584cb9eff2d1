#!/usr/bin/env bash
# Train, select and evaluate the model zoo on CPU, the way the shipped weights were made.
#
#   scripts/train_zoo.sh DATA_ROOT [ID ...]      e.g. scripts/train_zoo.sh ../shared/data csa_snn.figshare
#
# Each job is `python -m seg_core train` on the lite configuration with bfloat16 autocast and a
# wall-clock budget (MINUTES, per job), then `select` (threshold / morphology / flip TTA on the
# validation split). Weights that already exist are skipped unless FORCE=1. Afterwards run
# `python -m seg_core evaluate --all --data-root DATA_ROOT` for the test figures and the leaderboard.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_ROOT=${1:?usage: scripts/train_zoo.sh DATA_ROOT [ID ...]}
shift
PY=${PY:-.venv/bin/python}
# Idle OpenMP threads sleep instead of spinning: far less slowdown when other work shares the cores.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

# id | minutes | extra train arguments
JOBS=(
  "csa_snn.figshare|18|--lr 2e-3"
  "attention_unet.figshare|12|"
  "unet.brats2015|8|--lr 2e-3"
  "unet.lgg|10|"
  "sa_unet.figshare|8|--lr 2e-3"
  "naive_prior.figshare|5|"
  "pixel_classifier.figshare|10|"
  "sa_unet.lgg|8|--lr 2e-3"
  "csa_snn.brats2015|10|--lr 2e-3"
  "linknet_ag.figshare|8|"
  "segnet_ag.figshare|8|"
  "deeplab_aspp.figshare|10|"
  "unet_sspp.figshare|10|"
  "attention_unet.lgg|8|"
  "unet_sspp.brats2015|8|"
  "attention_snn.figshare|18|--lr 2e-3"
  "tcsa_snn.figshare|25|--lr 2e-3"
  "tcsa_snn.lgg|12|--lr 2e-3"
)

wanted=" $* "
for job in "${JOBS[@]}"; do
  IFS='|' read -r id minutes extra <<<"$job"
  if [[ $# -gt 0 && "$wanted" != *" $id "* ]]; then continue; fi
  if [[ -d "weights/$id" && "${FORCE:-0}" != 1 ]]; then echo "skip $id (weights exist)"; continue; fi
  arch=${id%%.*}
  dataset=${id#*.}
  echo "== $id: ${minutes} min"
  # shellcheck disable=SC2086
  $PY -m seg_core -v train --arch "$arch" --dataset "$dataset" --data-root "$DATA_ROOT" --size 128 --epochs 60 \
    --patience 8 --bf16 --max-minutes "$minutes" --no-progress $extra
  $PY -m seg_core select --model "$id" --dataset "$dataset" --data-root "$DATA_ROOT"
done
