#!/usr/bin/env bash
# The study's fine-tunes (README.md): PREFINE and BC on label sets 80–87, 200 pairs, validation episodes from seed
# 8 000, with the benchmark's Hopper pool (`run.sh benchmark`) and with a candidate gait added (`run.sh CANDIDATE`,
# a policy file beside this script: behaviour_speedcap0.35 or behaviour_cap0.6_penalty2). About 20 minutes per pool
# on one core; SEEDS="80 81 82 83" runs part of the label sets (the results file is appended to).
# CONFIRM=1: the confirmatory run on fresh label sets 88–95 and validation episodes from seed 8 100
# (results-<pool>-pool-confirm.jsonl).
set -euo pipefail
cd "$(dirname "$0")/../../.."
here=data/studies/2026-12-01-slower-hopper
pool=${1:?usage: $0 benchmark|CANDIDATE}
if [ "${CONFIRM:-0}" = 1 ]; then sets="88 89 90 91 92 93 94 95" validation=8100 suffix=-confirm
else sets="80 81 82 83 84 85 86 87" validation=8000 suffix=""; fi
common=(--task SafetyHopperVelocity-v1 --pairs 200 --seeds ${SEEDS:-$sets} --variants prefine bc
        --validation-seed $validation)
if [ "$pool" = benchmark ]; then
  .venv/bin/python scripts/validate_variants.py "${common[@]}" >> "$here/results-benchmark-pool$suffix.jsonl"
else
  [ -f "$here/$pool.safetensors" ] || { echo "no candidate $here/$pool.safetensors" >&2; exit 2; }
  .venv/bin/python scripts/validate_variants.py "${common[@]}" --extra-behaviour "$here/$pool.safetensors" \
    >> "$here/results-$pool-pool$suffix.jsonl"
fi
