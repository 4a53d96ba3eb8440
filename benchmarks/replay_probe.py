"""How good is a class-conditional GAN memory's replay, and what does the classifier learn from it?

    python benchmarks/replay_probe.py --bank runs/lifelong-gm/gan-memory/seed1/memory --out runs/replay-probe

Reads a gan-memory bank learned by ``benchmarks/lifelong.py`` on class-incremental Split-MNIST
(tasks t0-mnist-0-1, t1-mnist-2-3, ...) and, over its first ``--tasks`` tasks, measures with the
library's own training loop (``lifelong.runner.train_task``; the default CNN, Adam 1e-3):

1. ``real``: a classifier trained on the real training images of those tasks; its accuracy on
   their real test sets, and how often it agrees with the class each replay image was drawn for.
2. ``replay only``: the same classifier trained on the replay pools alone (no real image), tested
   on the real test sets: the ceiling that replay quality puts on any replay strategy.
3. ``last stage``: the class-incremental step of the last of those tasks: its real images plus
   the earlier tasks' pools, at each ``--shares`` value of ``replay_current``: 0 is the paper's
   all-real current batch, 0.5 draws half of the current task's images from its own memory. A gap
   between them is the "generated means old" shortcut: real old digits drift to the new classes.

Every classifier starts from the same seed. Writes OUT/results.json.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from ganmemory.atomic import atomic_write_json
from ganmemory.lifelong.classifier import Classifier, to_input
from ganmemory.lifelong.config import LifelongConfig
from ganmemory.lifelong.metrics import accuracy, predict
from ganmemory.lifelong.runner import train_task
from ganmemory.lifelong.strategies.base import Strategy
from ganmemory.lifelong.strategies.gan_memory import bank_task_name
from ganmemory.lifelong.strategies.generative import GenerativeReplay, draw_pool
from ganmemory.lifelong.tasks import load_task_data, parse_tasks
from ganmemory.memory import MemoryBank
from ganmemory.seeds import derive_seed


def quiet(_: str) -> None:
    pass


def trained(images: np.ndarray, labels: np.ndarray, strategy_cls, cfg: LifelongConfig, pools=None) -> Classifier:
    """A fresh classifier (seed ``cfg.seed``) after ``cfg.iters`` steps of ``train_task``."""
    torch.manual_seed(cfg.seed)
    model = Classifier(10)
    strategy = strategy_cls(cfg, Path("."), quiet)
    if pools is not None:
        old, (name, (x, y)) = pools
        if cfg.replay_current > 0:
            strategy.pool.set_current(name, x, y)
        for name, (x, y) in old:
            strategy.pool.add(name, x, y)
    train_task(model, images, labels, strategy, cfg, 0, "probe", progress=False)
    return model.eval()


def split_mnist_pools(bank: MemoryBank, tasks: list, n: int) -> list:
    """[(bank task name, (uint8 images, global labels))] of ``n`` replays per task, drawn as a run of
    seed 1 made before the sha256 seed rule drew its pools (so the figures in BENCHMARKS.md hold)."""
    pools = []
    for j, task in enumerate(tasks):
        name = bank_task_name(j, task)
        local = [list(bank.task_meta(name)["classes"]).index(c) for c in task.classes]
        seed = derive_seed(1, "replay-pool", j, rule="legacy")
        pools.append((name, draw_pool(bank.task_generator(name), task, local, n, bank.cfg.z_dim, seed=seed)))
    return pools


def write_results(out: Path, res: dict, t_start: float) -> None:
    """OUT/results.json, with the seconds since ``t_start``."""
    res["seconds"] = round(time.perf_counter() - t_start, 1)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", res)
    print(f"wrote {out / 'results.json'} ({res['seconds']:.0f} s)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bank", required=True, help="a gan-memory bank over split-mnist")
    p.add_argument("--tasks", type=int, default=4, help="how many of its tasks (the last is the 'last stage')")
    p.add_argument("--pool", type=int, default=6000, help="replay images drawn per task")
    p.add_argument("--iters", type=int, default=800, help="classifier steps per probe")
    p.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.5, 0.75],
                   help="replay_current values of the last stage")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/replay-probe")
    a = p.parse_args()
    t_start = time.perf_counter()
    bank = MemoryBank(a.bank)
    tasks = parse_tasks(None, "split-mnist")[:a.tasks]
    data = [load_task_data(t, bank.cfg.resolution) for t in tasks]
    pools = split_mnist_pools(bank, tasks, a.pool)

    def row(model: Classifier) -> list[float]:
        return [round(accuracy(model, d.test_images, d.test_labels), 4) for d in data]

    res: dict = {"bank": a.bank, "config": vars(a), "date": time.strftime("%Y-%m-%d"),
                 "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"}
    cfg = LifelongConfig(iters=a.iters, batch_size=256, seed=a.seed, replay_current=0.0)
    real = trained(np.concatenate([d.train_images for d in data]), np.concatenate([d.train_labels for d in data]),
                   Strategy, cfg)
    res["real"] = {"test_accuracy": row(real), "pools": {}}
    for name, (x, y) in pools:
        pred = predict(real, x)
        background = to_input(torch.from_numpy(x[:, :3, :3]))  # the top-left 3x3 corner, in [-1, 1]
        res["real"]["pools"][name] = {"agreement": round(float((pred == y).mean()), 4),
                                      "corner_mean": round(float(background.mean()), 3)}
    res["real"]["real_corner_mean"] = round(float(to_input(torch.from_numpy(
        np.concatenate([d.train_images[:, :3, :3] for d in data]))).mean()), 3)
    print("real:", res["real"], flush=True)
    only = trained(np.concatenate([x for _, (x, _) in pools]), np.concatenate([y for _, (_, y) in pools]),
                   Strategy, cfg)
    res["replay_only"] = {"test_accuracy": row(only)}
    print("replay only:", res["replay_only"], flush=True)
    res["last_stage"] = {}
    for share in a.shares:
        cfg = LifelongConfig(iters=a.iters, batch_size=128, seed=a.seed, replay_current=share)
        model = trained(data[-1].train_images, data[-1].train_labels, GenerativeReplay, cfg,
                        pools=(pools[:-1], pools[-1]))
        res["last_stage"][str(share)] = {"test_accuracy": row(model)}
        print(f"last stage, replay_current {share}:", res["last_stage"][str(share)], flush=True)
    write_results(Path(a.out), res, t_start)


if __name__ == "__main__":
    main()
