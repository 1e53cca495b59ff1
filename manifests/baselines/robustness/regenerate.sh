#!/usr/bin/env bash
# Regenerates manifests/baselines/robustness/: the built-in baselines on the dataset built from the embedded sample
# pairs with the severity recipe demmi-rf-c, scored with the tang profile, and their robustness reports
# (demmi robustness, reference method `average`; docs/benchmark.md section 6). Usage:
#
#     bash manifests/baselines/robustness/regenerate.sh [WORK_DIR]
#
# tang/             average, max, laplacian on all 70 settings (12 atoms x 5 levels, clean, the paper's mixtures)
# tang-v1-atoms/    average and cascade on clean and the v1 atoms' levels (noise50, defocus, haze, stripe): the
#                   cascade has restorations for the v1 atoms only
# oracle-clean is left out (it reads the clean sources: flat curves, rCE 0). The output does not depend on the
# worker count (see manifests/baselines/README.md for what reproduces).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
METHODS=(average max laplacian)
V1_SETTINGS="clean"
for atom in noise50 defocus haze stripe; do
  for k in 1 2 3 4 5; do V1_SETTINGS="$V1_SETTINGS,$atom.s$k"; done
done
if [[ $# -ge 1 ]]; then
  WORK="$1"
  mkdir -p "$WORK"
else
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
fi

demmi build --recipe demmi-rf-c --out "$WORK/dataset" --no-progress
mkdir -p "$HERE/tang" "$HERE/tang-v1-atoms"
for method in "${METHODS[@]}"; do
  demmi baseline "$method" --dataset "$WORK/dataset" --out "$WORK/fused/$method" --no-progress
  demmi eval --dataset "$WORK/dataset" --fused "$WORK/fused/$method" --method "$method" --profile tang \
    --out "$HERE/tang/$method.json" --no-progress > /dev/null
done
# the v1 atoms' images of `average` in a folder of their own, so that its results list no extra file
mkdir -p "$WORK/fused-v1/average"
for setting in ${V1_SETTINGS//,/ }; do cp "$WORK/fused/average/"*"@$setting.png" "$WORK/fused-v1/average/"; done
demmi baseline cascade --dataset "$WORK/dataset" --out "$WORK/fused-v1/cascade" --degradations "$V1_SETTINGS" \
  --no-progress
for method in average cascade; do
  demmi eval --dataset "$WORK/dataset" --fused "$WORK/fused-v1/$method" --method "$method" --profile tang \
    --degradations "$V1_SETTINGS" --out "$HERE/tang-v1-atoms/$method.json" --no-progress > /dev/null
done
for fmt in md csv json; do
  demmi robustness "$HERE/tang/average.json" "$HERE/tang/max.json" "$HERE/tang/laplacian.json" \
    --reference average --format "$fmt" --out "$HERE/tang/robustness.$fmt" 2> /dev/null
  demmi robustness "$HERE/tang-v1-atoms/average.json" "$HERE/tang-v1-atoms/cascade.json" \
    --reference average --format "$fmt" --out "$HERE/tang-v1-atoms/robustness.$fmt" 2> /dev/null
done
echo "manifests/baselines/robustness regenerated (dataset and fused images in $WORK)"
