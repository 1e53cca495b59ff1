#!/usr/bin/env bash
# Regenerates every file of manifests/baselines/: the results of each built-in baseline on the dataset built
# from the embedded sample pairs with the default recipe (demmi-rf-v1), under the tang and paper profiles,
# and the two leaderboards. Usage (from anywhere, with the toolkit installed):
#
#     bash manifests/baselines/regenerate.sh [WORK_DIR]
#
# WORK_DIR (default: a fresh temporary folder, removed at the end) receives the dataset and the fused images.
# The output does not depend on the worker count; see manifests/baselines/README.md for what is compared.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
METHODS=(average max laplacian cascade oracle-clean)
PROFILES=(tang paper)
if [[ $# -ge 1 ]]; then
  WORK="$1"
  mkdir -p "$WORK"
else
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
fi

demmi build --out "$WORK/dataset" --no-progress
for method in "${METHODS[@]}"; do
  demmi baseline "$method" --dataset "$WORK/dataset" --out "$WORK/fused/$method" --no-progress
  for profile in "${PROFILES[@]}"; do
    mkdir -p "$HERE/$profile"
    demmi eval --dataset "$WORK/dataset" --fused "$WORK/fused/$method" --method "$method" --profile "$profile" \
      --out "$HERE/$profile/$method.json" --no-progress > /dev/null
  done
done
for profile in "${PROFILES[@]}"; do
  files=()
  for method in "${METHODS[@]}"; do files+=("$HERE/$profile/$method.json"); done
  demmi leaderboard "${files[@]}" --out "$HERE/$profile/leaderboard.md" > /dev/null
done
echo "manifests/baselines regenerated (dataset and fused images in $WORK)"
