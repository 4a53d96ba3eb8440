#!/usr/bin/env bash
# Split-MNIST gan-memory on a lent GPU with more GAN iterations than the CPU box affords (issue 5).
# On an H200 a 32 px GAN step takes about 0.02 s, so 4,000 iterations per task are about 7 min
# for the 5 tasks of one seed, plus the classifier; seeds 1-3 give the issue's mean +- std. A stop
# (e.g. the device's time running out) keeps every finished task: rerun with --resume. Not part of CI.
#   bash benchmarks/gpu_lifelong.sh OUT [more benchmarks/lifelong.py options, which override]
#   DEVICE=cpu bash benchmarks/gpu_lifelong.sh /tmp/gl --gan-iters 2 --iters 2 --replay-pool 16  # smoke
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=src PYTHONUNBUFFERED=1
out=${1:?usage: gpu_lifelong.sh OUT [lifelong.py options]}
shift
python3 benchmarks/lifelong.py --strategies gan-memory --seeds 1 2 3 --gan-iters 4000 \
    --device "${DEVICE:-cuda}" --out "$out" "$@"
bank=$(ls -d "$out"/gan-memory/seed*/memory | head -1)
python3 -m ganmemory sample --memory "$bank" --task t2-mnist-4-5 --class 4 --class 5 -n 32 \
    --out "$out/samples_4_5.png"
