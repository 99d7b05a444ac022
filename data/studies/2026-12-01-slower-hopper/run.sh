#!/usr/bin/env bash
# The study's fine-tunes (README.md): PREFINE and BC on label sets 80–87, 200 pairs, validation episodes from seed
# 8 000, with the benchmark's Hopper pool and with the candidate gait added. About 20 minutes per pool on one core.
set -euo pipefail
cd "$(dirname "$0")/../../.."
here=data/studies/2026-12-01-slower-hopper
common=(--task SafetyHopperVelocity-v1 --pairs 200 --seeds 80 81 82 83 84 85 86 87 --variants prefine bc
        --validation-seed 8000)
case "${1:-both}" in
  benchmark) .venv/bin/python scripts/validate_variants.py "${common[@]}" > "$here/results-benchmark-pool.jsonl" ;;
  candidate) .venv/bin/python scripts/validate_variants.py "${common[@]}" \
               --extra-behaviour "$here/behaviour_speedcap0.35.safetensors" > "$here/results-candidate-pool.jsonl" ;;
  both) "$0" benchmark; "$0" candidate ;;
  *) echo "usage: $0 [benchmark|candidate|both]" >&2; exit 2 ;;
esac
