"""One point of the adaptation-recipe sweep: learn a task over the shipped source with given
training options, then score it with FD-EL0 against a real split and save a 64-sample grid.

    python benchmarks/recipe_probe.py --name paper600 --cfg '{"lr_g": 1e-4, "lr_d": 1e-4, "ema_rampup": 0}'
    python benchmarks/recipe_probe.py --name tuned600 --cfg '{}'          # today's defaults

``--cfg`` is JSON of TrainConfig fields on top of the defaults (``layout`` as an object of
TaskLayout fields). Appends one JSON line to ``--results``; the grid goes to ``--out/NAME.png``.
Runs on one thread by default so two points can run side by side on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from ganmemory.evaluate import Scorer, evaluate_task
from ganmemory.images import save_grid
from ganmemory.memory import MemoryBank
from ganmemory.train import TrainConfig
from ganmemory.train import precision


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True)
    p.add_argument("--data", default="mnist")
    p.add_argument("--test", default="mnist@test")
    p.add_argument("--iters", type=int, default=600)
    p.add_argument("--n", type=int, default=2000, help="generated and real images of the FD-EL0 score")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cfg", default="{}", help="TrainConfig fields as JSON, on top of the defaults")
    p.add_argument("--out", default="runs/recipe")
    p.add_argument("--results", default="runs/recipe/results.jsonl")
    p.add_argument("--emulate-bf16", action="store_true",
                   help="with cfg precision bf16: run it even where the processor would emulate bf16 (learn "
                        "falls back to fp32 there). Emulated bf16 rounds as native bf16 does, so the score "
                        "measures bf16's quality; its time says nothing about bf16's speed")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.emulate_bf16:
        precision.bf16_native = lambda _device: True
    root = Path(a.out) / a.name
    shutil.rmtree(root, ignore_errors=True)
    bank = MemoryBank.create(root)
    options = {"iters": a.iters, "sample_every": 0, "ckpt_every": 0, "log_every": 50, **json.loads(a.cfg)}
    t0 = time.time()
    bank.learn("t", a.data, TrainConfig(**options), progress=False, log=lambda _: None)
    train_s = time.time() - t0
    fd = evaluate_task(bank, "t", a.test, scorer=Scorer(a.test, bank.cfg.resolution, "fd-el0", a.n))["value"]
    save_grid(bank.sample("t", 64, seed=0), Path(a.out) / f"{a.name}.png", nrow=8, scale=2)
    res = {"name": a.name, "cfg": json.loads(a.cfg), "iters": a.iters, "train_s": round(train_s, 1),
           "precision": bank.task_meta("t")["train"]["precision"], "processor": precision.cpu_name(),
           "fd_el0": round(fd, 2), "n": a.n, "date": time.strftime("%Y-%m-%d")}
    print(json.dumps(res))
    Path(a.results).parent.mkdir(parents=True, exist_ok=True)
    with open(a.results, "a") as fh:
        fh.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
