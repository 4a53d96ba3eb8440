#!/usr/bin/env bash
# GPU check (a few minutes on a lent H100/H200): GAN-memory learn steps at 32 to 256 px on
# synthetic data, step time, peak memory and sampling images/s, then batched multi-task sampling
# against a loop (issue 7's 2x target, missed on the CPU). Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'threads', torch.get_num_threads())"
python3 benchmarks/gpu_check.py --res 256 --nf 64 --batch 16 --steps 10
python3 benchmarks/gpu_check.py --res 64 128 --nf 32 --batch 16 --steps 10
python3 benchmarks/gpu_check.py --res 32 --nf 32 --batch 16 --steps 20
# the per-step cost at 32 px is launch-bound; show how much is CPU-side threading
OMP_NUM_THREADS=1 python3 benchmarks/gpu_check.py --res 32 --nf 32 --batch 16 --steps 20
python3 benchmarks/sampling_speed.py --device cuda --tasks 5 -n 64
python3 benchmarks/sampling_speed.py --device cuda --tasks 5 -n 512
