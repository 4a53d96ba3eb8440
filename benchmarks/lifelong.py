"""Class-incremental Split-MNIST with every strategy, next to published anchors.

    python benchmarks/lifelong.py                                  # the full run (see below for its cost)
    python benchmarks/lifelong.py --device cuda                    # the same on a GPU
    python benchmarks/lifelong.py --resume                         # continue after a stop
    python benchmarks/lifelong.py --iters 20 --gan-iters 4 --replay-pool 64 --seeds 0 --out /tmp/ll  # smoke

Five tasks of two digits (0-1, 2-3, ...), one classifier head over all ten classes. gan-memory
and joint run with --seeds (mean +- std over seeds; each seed also re-learns the GAN memory);
finetune, ewc and mergan with the first seed only. Writes OUT/results.json and OUT/table.md,
and keeps every run's own folder (OUT/STRATEGY/seedS/: results.json, table.md, accuracy.png).

Cost on the 2-core CPU box: a 32 px GAN step takes about 0.3 s, so gan-memory spends about
50 min per seed learning its 5 tasks (2,000 steps each); its classifier then takes about 54 min,
as every batch holds 128 images per task seen (640 at task 5). joint takes 20-40 min per seed;
with all strategies and seeds the run is about 7 h there. Run it on a GPU (``--device cuda``)
or overnight; ``--resume`` continues it after a stop, from the last finished task.

The anchors come from van de Ven et al.'s public code ("Three types of incremental learning"),
class-incremental Split MNIST at its defaults (2,000 iterations per task), seeds 1-3, run on
this 2-core CPU; ``ANCHORS`` quotes those figures, this script does not re-run them.
"""

from __future__ import annotations

import argparse
import inspect
import json
import platform
import statistics
import time
from dataclasses import fields
from pathlib import Path

import torch

from ganmemory.atomic import atomic_write_bytes, atomic_write_json
from ganmemory.lifelong.config import LifelongConfig, with_added_options
from ganmemory.lifelong.runner import CHECKPOINT, run_lifelong
from ganmemory.lifelong.strategies import STRATEGIES, get_strategy
from ganmemory.lifelong.strategies.generative import REPLAY_GAN_LR
from ganmemory.lifelong.tasks import parse_tasks

ANCHORS = [("none (van de Ven et al.)", "19.8 %", ""), ("EWC (van de Ven et al., seed 1)", "21.2 %", ""),
           ("DGR (van de Ven et al.)", "91.4 % (91.8 / 91.5 / 90.9)", "about 240 s per run"),
           ("BI-R (van de Ven et al.)", "94.3 % (95.8 / 92.6 / 94.5)", "about 205 s per run"),
           ("joint (van de Ven et al.)", "97.9 %", "")]
ORDER = ("finetune", "ewc", "mergan", "gan-memory", "joint")
MULTI_SEED = ("gan-memory", "joint")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--strategies", nargs="+", default=list(ORDER), choices=tuple(STRATEGIES))
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--iters", type=int, default=2000, help="classifier steps per task (van de Ven: 2000)")
    p.add_argument("--gan-iters", type=int, default=2000, help="GAN steps per task (gan-memory, mergan)")
    p.add_argument("--gan-lr", type=float, default=REPLAY_GAN_LR, help="GAN Adam learning rate (gan-memory, mergan)")
    p.add_argument("--gan-batch", type=int, default=16, help="GAN batch size (gan-memory, mergan)")
    p.add_argument("--replay-pool", type=int, default=10_000)
    p.add_argument("--replay-current", type=float, default=LifelongConfig.replay_current,
                   help="gan-memory, mergan: generated share of the current task's images (0: the paper's)")
    p.add_argument("--replay-keep", type=float, default=LifelongConfig.replay_keep,
                   help="gan-memory: share of drawn replays kept by the judge (1: all, no judge)")
    p.add_argument("--out", default="runs/lifelong")
    p.add_argument("--device", default="cpu", help="e.g. cuda: the classifier and the GANs")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted benchmark: finished runs in OUT are read back, unfinished ones resumed")
    p.add_argument("--report-only", metavar="RESULTS_JSON", help="only rewrite the table of a finished run")
    a = p.parse_args()
    out = Path(a.out)
    if a.report_only:
        out.mkdir(parents=True, exist_ok=True)
        write_table(json.loads(Path(a.report_only).read_text()), out)
        return
    tasks = parse_tasks(None, "split-mnist")
    results = {"config": vars(a), "date": time.strftime("%Y-%m-%d"),
               "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
               "runs": {}}
    for strategy in a.strategies:
        for seed in (a.seeds if strategy in MULTI_SEED else a.seeds[:1]):
            cfg = LifelongConfig(iters=a.iters, replay_pool=a.replay_pool, seed=seed, replay_current=a.replay_current,
                                 **({"replay_keep": a.replay_keep} if strategy == "gan-memory" else {}))
            cls = get_strategy(strategy)  # its own options, from the arguments of the same names
            options = cls.Options(**{f.name: getattr(a, f.name) for f in fields(cls.Options)
                                     if getattr(a, f.name, None) is not None})
            kwargs = cls.init_kwargs(options, cfg, a.device)
            if "progress" in inspect.signature(cls).parameters:
                kwargs["progress"] = False
            run_dir = out / strategy / f"seed{seed}"
            finished = run_dir / "results.json"
            r = json.loads(finished.read_text()) if a.resume and finished.exists() else {}
            if r.get("complete"):
                gan = kwargs["gan"].to_dict() if "gan" in kwargs else None
                if with_added_options(r["config"]) != cfg.to_dict() or r["strategy_summary"].get("gan") != gan:
                    raise SystemExit(f"{finished} was run with other options: give another --out")
                print(f"{strategy} seed {seed}: finished before, read back from {finished}", flush=True)
            else:
                r = run_lifelong(tasks, strategy, cfg, run_dir, progress=False, strategy_kwargs=kwargs,
                                 device=a.device, resume=a.resume and (run_dir / CHECKPOINT).exists())
            results["runs"].setdefault(strategy, []).append(
                {"seed": seed, "final_average_accuracy": r["final_average_accuracy"],
                 "average_forgetting": r["average_forgetting"], "seconds": r["seconds_total"]})
            atomic_write_json(out / "results.json", results)
            print(f"{strategy} seed {seed}: {100 * r['final_average_accuracy']:.2f} % "
                  f"in {r['seconds_total']:.0f} s", flush=True)

    write_table(results, out)


def write_table(results: dict, out: Path) -> None:
    """OUT/table.md from a results dict (also from a saved results.json)."""
    lines = ["| method | final average accuracy | average forgetting | wall time per run |", "|---|---|---|---|"]
    for strategy, runs in results["runs"].items():
        accs = [100 * r["final_average_accuracy"] for r in runs]
        fgt = [100 * r["average_forgetting"] for r in runs]
        secs = statistics.median(r["seconds"] for r in runs)
        acc = f"{statistics.mean(accs):.1f} %" + (f" ± {statistics.stdev(accs):.1f}" if len(accs) > 1 else "")
        acc += f" ({' / '.join(f'{v:.1f}' for v in accs)})" if len(accs) > 1 else f" (seed {runs[0]['seed']})"
        lines.append(f"| ganmemory {strategy} | {acc} | {statistics.mean(fgt):.1f} points | {secs:.0f} s |")
    for name, acc, t in ANCHORS:
        lines.append(f"| {name} | {acc} | | {t} |")
    atomic_write_bytes(out / "table.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
