#!/usr/bin/env bash
# Regenerates manifests/baselines/robustness/: every built-in baseline (average, max, laplacian, cascade,
# oracle-clean) on all 70 settings of the dataset built from the embedded sample pairs with the severity recipe
# demmi-rf-c (12 atoms x 5 levels, clean, the paper's nine mixtures), scored with each profile, and their
# robustness reports (demmi robustness, reference method `average`; docs/benchmark.md section 6). Usage:
#
#     bash manifests/baselines/robustness/regenerate.sh [WORK_DIR]
#
# PROFILES (environment, default "tang") lists the profiles to score, e.g. PROFILES="tang paper";
# WORKERS (default: the CPU count) is passed to demmi baseline and demmi eval.
# <profile>/<method>.json, .csv   demmi eval of each baseline on the test split, all 70 settings
# <profile>/robustness.md/.csv/.json   demmi robustness of the five, reference average
# oracle-clean reads the clean sources (the protocol's ceiling: flat curves, rCE 0). The output does not depend
# on the worker count (see manifests/baselines/README.md for what reproduces).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
REL="manifests/baselines/robustness"
METHODS=(average max laplacian cascade oracle-clean)
read -r -a PROFILE_LIST <<< "${PROFILES:-tang}"
WORKER_ARGS=()
if [[ -n "${WORKERS:-}" ]]; then WORKER_ARGS=(--workers "$WORKERS"); fi
if [[ $# -ge 1 ]]; then
  WORK="$1"
  mkdir -p "$WORK"
else
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
fi

demmi build --recipe demmi-rf-c --out "$WORK/dataset" --no-progress "${WORKER_ARGS[@]}"
for method in "${METHODS[@]}"; do
  demmi baseline "$method" --dataset "$WORK/dataset" --out "$WORK/fused/$method" --no-progress "${WORKER_ARGS[@]}"
done
for profile in "${PROFILE_LIST[@]}"; do
  mkdir -p "$HERE/$profile"
  files=()
  for method in "${METHODS[@]}"; do
    demmi eval --dataset "$WORK/dataset" --fused "$WORK/fused/$method" --method "$method" --profile "$profile" \
      --out "$HERE/$profile/$method.json" --no-progress "${WORKER_ARGS[@]}" > /dev/null
    files+=("$REL/$profile/$method.json")
  done
  # from the repository root with relative paths, so that the reports name the files the same on every checkout
  for fmt in md csv json; do
    (cd "$REPO" && demmi robustness "${files[@]}" --reference average --format "$fmt" \
      --out "$REL/$profile/robustness.$fmt" 2> /dev/null)
  done
done
echo "manifests/baselines/robustness regenerated (${PROFILE_LIST[*]}; dataset and fused images in $WORK)"
