"""Can a judge that only sees what a lifelong run has at task t pick out the good replays?

    python benchmarks/replay_filter.py --bank runs/lifelong-rc1/gan-memory/seed1/memory --out runs/replay-filter

The replay probe (``benchmarks/replay_probe.py``) showed that a classifier trained on real data
agrees with the class asked on only 75-97 % of a task's replays, and that this caps the lifelong
classifier. Here each task's pool is ranked by a judge's confidence in the class asked, and the
top ``--keep`` fraction is kept. The judges, each a fresh default CNN trained with the library's
loop (``lifelong.runner.train_task``; seed ``--seed``):

- ``task``: trained on task t's real training images alone (available when task t is learned);
- ``seen``: task t's real images plus the pools of tasks 0 .. t-1 (also available then);
- ``oracle``: the reference itself, trained on the real images of all tasks; not available in a
  lifelong run, it is the ceiling of any ranking.

The reference, trained on real data of all tasks, scores every kept set: how often it agrees
with the class asked. Writes OUT/results.json.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from ganmemory.lifelong.config import LifelongConfig
from ganmemory.lifelong.judge import class_confidence
from ganmemory.lifelong.metrics import accuracy, predict
from ganmemory.lifelong.strategies.base import Strategy
from ganmemory.lifelong.strategies.generative import GenerativeReplay
from ganmemory.lifelong.tasks import load_task_data, parse_tasks
from ganmemory.memory import MemoryBank
from replay_probe import split_mnist_pools, trained, write_results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bank", required=True, help="a gan-memory bank over split-mnist")
    p.add_argument("--pool", type=int, default=2000, help="replay images drawn per task")
    p.add_argument("--ref-iters", type=int, default=800, help="reference classifier steps (batch 128)")
    p.add_argument("--judge-iters", type=int, default=300, help="judge steps (batch 64)")
    p.add_argument("--keep", type=float, nargs="+", default=[0.5, 0.67, 0.8], help="fractions of a pool kept")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/replay-filter")
    a = p.parse_args()
    t_start = time.perf_counter()
    bank = MemoryBank(a.bank)
    tasks = parse_tasks(None, "split-mnist")
    data = [load_task_data(t, bank.cfg.resolution) for t in tasks]
    pools = split_mnist_pools(bank, tasks, a.pool)
    ref = trained(np.concatenate([d.train_images for d in data]), np.concatenate([d.train_labels for d in data]),
                  Strategy, LifelongConfig(iters=a.ref_iters, batch_size=128, seed=a.seed))
    res: dict = {"bank": a.bank, "config": vars(a), "date": time.strftime("%Y-%m-%d"),
                 "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
                 "reference_test_accuracy": round(float(np.mean([accuracy(ref, d.test_images, d.test_labels)
                                                                for d in data])), 4), "tasks": {}}
    print(f"reference: {100 * res['reference_test_accuracy']:.2f} % on the real test sets", flush=True)
    jcfg = LifelongConfig(iters=a.judge_iters, batch_size=64, seed=a.seed, replay_current=0.0)
    for t, (name, (x, y)) in enumerate(pools):
        agree = predict(ref, x) == y  # [N]
        judges = {"oracle": class_confidence(ref, x, y),
                  "task": class_confidence(trained(data[t].train_images, data[t].train_labels, Strategy, jcfg), x, y)}
        if t:
            seen = trained(data[t].train_images, data[t].train_labels, GenerativeReplay, jcfg,
                           pools=(pools[:t], pools[t]))
            judges["seen"] = class_confidence(seen, x, y)
        row = {"all": round(float(agree.mean()), 4)}
        for judge, conf in judges.items():
            order = np.argsort(-conf, kind="stable")
            for keep in a.keep:
                row[f"{judge}@{keep}"] = round(float(agree[order[:round(keep * len(order))]].mean()), 4)
        res["tasks"][name] = row
        print(name, row, flush=True)
    write_results(Path(a.out), res, t_start)


if __name__ == "__main__":
    main()
