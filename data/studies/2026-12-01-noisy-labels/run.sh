#!/usr/bin/env bash
# The noisy-label study (README.md): PREFINE and BC on label sets 70–73 at mistake rates 0 and 0.2, one core.
set -euo pipefail
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=1 MUJOCO_GL=egl
here=data/studies/2026-12-01-noisy-labels
for task in SafetyHalfCheetahVelocity-v1 SafetyPointCircle1-v0 SafetyHopperVelocity-v1; do
  for rate in 0.2 0; do
    .venv/bin/python scripts/validate_variants.py --task "$task" --pairs 200 --seeds 70 71 72 73 --variants prefine bc \
      --validation-seed 9990 --mistake-rate "$rate" --out "data/bench/validation-noisy/$task" >> "$here/results-$task.jsonl"
  done
done
