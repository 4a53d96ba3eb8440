"""glibc malloc as it comes against malloc told to keep large blocks (``mallopt``: mmap threshold
32 MB, trim threshold 1 GB, top pad 64 MB), side by side: EfficientNet-Lite0 feature extraction
at three batch sizes (what every FD-EL0 score costs) and a 32 px GAN-memory training step.

    python benchmarks/allocator.py              # 5 alternating rounds of each, in fresh processes

Each measurement runs in a fresh Python process (malloc settings are per process), the two
settings alternating round by round. Features: 256 random 32 px images, batch 8, 16 and 32
(``extract_features`` uses 8). Step: batch 16 over the shipped source, task parameters only,
median of 10 steps after 3 warm-up steps. Prints medians and ratios with the processor's name.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, time, statistics
if sys.argv[1] == "tuned":  # keep blocks up to 32 MB on the heap and do not trim it
    import ctypes
    mallopt = ctypes.CDLL("libc.so.6").mallopt
    assert mallopt(-3, 32 << 20) == mallopt(-1, 1 << 30) == mallopt(-2, 64 << 20) == 1
import torch
torch.set_num_threads(2)
out = {}
from ganmemory.metrics.features import build_extractor, extract_features
ex = build_extractor("el0")
x = torch.rand(256, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
extract_features(x[:16], ex)
for bs in (8, 16, 32):
    t = time.perf_counter(); extract_features(x, ex, batch_size=bs); out[f"features_b{bs}"] = 256 / (time.perf_counter() - t)
from ganmemory.nets import Discriminator, Generator
from ganmemory.source import Source
from ganmemory.train import GANTrainer, TrainConfig
src = Source.load()
G = Generator(src.cfg, modulated=True); G.load_source(src.G.state_dict())
D = Discriminator(src.cfg, modulated=True); D.load_source(src.D.state_dict())
tr = GANTrainer(G, D, TrainConfig(batch_size=16), g_params=G.task_parameters(), d_params=D.task_parameters())
imgs = torch.randint(0, 256, (16, 32, 32, 3), dtype=torch.uint8); y = torch.zeros(16, dtype=torch.long)
times = []
for i in range(13):
    t = time.perf_counter(); tr.train_step(imgs, y); times.append(time.perf_counter() - t)
out["step_s"] = statistics.median(times[3:])
print(json.dumps(out))
"""


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", help="also write the results here")
    a = p.parse_args()
    runs: dict[str, list[dict]] = {"default": [], "tuned": []}
    for _ in range(a.rounds):
        for mode in runs:
            proc = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True)
            runs[mode].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    med = {mode: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for mode, rs in runs.items()}
    print(f"{cpu_name()}, 2 threads, {a.rounds} alternating rounds, medians")
    print(f"{'':24} {'glibc default':>14} {'tuned':>10} {'ratio':>7}")
    for k in med["default"]:
        unit = "s" if k == "step_s" else "img/s"
        d, t = med["default"][k], med["tuned"][k]
        ratio = d / t if k == "step_s" else t / d
        print(f"{k + ' (' + unit + ')':24} {d:14.3f} {t:10.3f} {ratio:6.2f}x")
    if a.json:
        Path(a.json).write_text(json.dumps({"cpu": cpu_name(), "rounds": a.rounds, "median": med, "runs": runs},
                                           indent=2) + "\n")


if __name__ == "__main__":
    main()
