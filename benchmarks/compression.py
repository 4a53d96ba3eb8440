"""Compression of stored tasks: parameters per task (% of G) and the FD-EL0 change.

    python benchmarks/compression.py                   # on the sequence benchmark's bank (runs/sequence/bank)
    python benchmarks/compression.py --bank BANK --energies 0.9 --n 200 --out /tmp/cmp   # smaller
    python benchmarks/compression.py --modes trained --energies 0.9 --out runs/compression-trained
    python benchmarks/compression.py --energies 0.9 --budgets 5 --modes per-task   # 5 % of G per task
    python benchmarks/compression.py --energies --max-losses 10 --modes per-task   # least of G losing 10 % at most

For every mode and energy, the bank's tasks go into a new bank under OUT and each task is scored
against its own training data with the same latents as the uncompressed task:

- ``per-task``, ``shared``: the stored tasks compressed after the fact, in fp16, factorising
  each matrix's change from the source (``--of change``, ``compress``'s default) or the matrix
  itself (``--of matrix``), at each of ``--energies``; per-task also at each of ``--budgets``
  (``compress --budget``: a share of G per task, its ranks spread over the task's matrices) and at
  each of ``--max-losses`` (``compress --max-loss``: each task the least budget at which its FD-EL0
  rose at most that many % and its images moved back towards the source's by at most that share
  of the task's way, searched on the latents of the scores; since that choice is fitted to those
  latents, these rows are also scored before and after on other latents, seed 1);
- ``trained``: the tasks learned again, in order, with ``learn --lowrank`` (the same data and
  training options as the stored ones; float32), so they train in the accumulated bases.

The score is FD-EL0, a Fréchet distance on EfficientNet-Lite0 features (not FID). For ``trained``
the "before" score is the stored task's, learned without --lowrank: the two runs differ by the
training path as well as by the compression. Targets: at most 5 % of G per task on average, with at most a
10 % rise in FD-EL0. The after-the-fact modes also report the share of each task's change from
the source that compression lost (``change_lost``). Writes OUT/results.json, OUT/table.md and,
next to every score a sample grid, OUT/MODE-ENERGY/grids/TASK.png: 32 of the stored task's
samples (top four rows) over the compressed task's from the same 32 latents (bottom four rows).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

import torch

from ganmemory.atomic import atomic_write_bytes, atomic_write_json
from ganmemory.compress import LowRankConfig, change_lost
from ganmemory.evaluate import Scorer, evaluate_task
from ganmemory.images import save_grid
from ganmemory.memory import MemoryBank
from ganmemory.store import unprefixed
from ganmemory.train import TrainConfig


def task_change_lost(bank: MemoryBank, small: MemoryBank, name: str) -> float:
    """``ganmemory.compress.change_lost`` of a task stored in ``bank`` and compressed into ``small``."""
    start = bank.task_start(int(bank.task_meta(name).get("n_classes", 0)))
    full, comp = bank.load_task(name)[0], small.load_task(name)[0]
    return change_lost(unprefixed("G", full), unprefixed("G", comp), start)


GRID_N = 32  # samples per half of a before/after grid


def save_before_after(stored: torch.Tensor, small: MemoryBank, name: str, path: Path) -> None:
    """The stored task's samples (``stored``, seed 0) over the compressed task's, same latents."""
    x = torch.cat([stored, small.sample(name, GRID_N, seed=0)])
    path.parent.mkdir(parents=True, exist_ok=True)
    save_grid(x, path, nrow=8, scale=2)


def learn_lowrank(bank: MemoryBank, names: list[str], dest: MemoryBank, energy: float, init: str) -> list[dict]:
    """Learn ``names`` again into ``dest`` with ``--lowrank``, with their stored data and options."""
    rows = []
    for name in names:
        meta = bank.task_meta(name)
        t0 = time.perf_counter()
        new = dest.learn(name, meta["data"], TrainConfig.from_dict(meta["train"]), progress=False,
                         log=lambda _m: None, lowrank=LowRankConfig(energy=energy, init=init))
        rows.append({"task": name, "parameters_before": new["compressed"]["parameters_before"],
                     "parameters_after": new["task_parameters"], "seconds": round(time.perf_counter() - t0, 1),
                     "basis_parameters_added": new["compressed"]["basis_parameters_added"]})
        print(f"learned {name} with --lowrank {energy}: {new['task_parameters']:,} parameters", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bank", default="runs/sequence/bank")
    p.add_argument("--energies", nargs="*", type=float, default=[0.8, 0.9, 0.95],
                   help="energies per mode (none: only --budgets)")
    p.add_argument("--budgets", nargs="+", type=float, default=[],
                   help="per-task mode also at these budgets, in %% of G per task (compress --budget)")
    p.add_argument("--max-losses", nargs="+", type=float, default=[],
                   help="per-task mode also at these largest losses, in %% (compress --max-loss)")
    p.add_argument("--modes", nargs="+", default=["per-task", "shared"], choices=["per-task", "shared", "trained"])
    p.add_argument("--n", type=int, default=1000, help="generated and real images per score")
    p.add_argument("--of", default="change", choices=["change", "matrix"],
                   help="after-the-fact modes: factorise each matrix's change from the source, or the matrix")
    p.add_argument("--lowrank-init", default="source", choices=["source", "previous"],
                   help="trained mode: where each task's coefficients start (learn --lowrank-init)")
    p.add_argument("--out", default="runs/compression")
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    bank = MemoryBank(a.bank)
    names = bank.tasks()
    n_g = bank.generator_param_count()[1]
    scorers = {t: Scorer(bank.task_meta(t)["data"], bank.cfg.resolution, "fd-el0", a.n) for t in names}
    before = {t: evaluate_task(bank, t, bank.task_meta(t)["data"], scorer=scorers[t])["value"] for t in names}
    stored_x = {t: bank.sample(t, GRID_N, seed=0) for t in names}  # the grids' top halves
    results = {"bank": a.bank, "n": a.n, "of": a.of, "lowrank_init": a.lowrank_init,
               "date": time.strftime("%Y-%m-%d"), "generator_parameters": n_g,
               "before": {t: {"FD-EL0": before[t], "parameters": bank.task_meta(t)["task_parameters"]}
                          for t in names}, "runs": []}
    lines = [("| mode | energy / budget | task | parameters | % of G | FD-EL0 before -> after | FD change | change lost "
              "| FD change, latents of seed 1 |"), "|---|---|---|---|---|---|---|---|---|"]
    settings = [(mode, energy, None, None) for mode in a.modes for energy in a.energies]
    settings += [("per-task", None, budget, None) for budget in a.budgets]
    settings += [("per-task", None, None, loss) for loss in a.max_losses]
    other = {}  # the stored tasks' scores on the other latents, for the --max-losses rows
    for mode, energy, budget, loss in settings:
        search: list[str] = []  # a --max-losses row's search, probe by probe
        kept = energy if energy is not None else f"{budget:g} % of G" if budget is not None else f"loss <= {loss:g} %"
        dest = out / (f"{mode}-{energy}" if energy is not None else f"{mode}-budget{budget:g}" if budget is not None
                      else f"{mode}-loss{loss:g}")
        shutil.rmtree(dest, ignore_errors=True)
        small = MemoryBank.create(dest, bank.root / "source.safetensors")
        if mode == "trained":
            rows = learn_lowrank(bank, names, small, energy, a.lowrank_init)
        else:
            rows = bank.compress(names, energy, torch.float16, small, shared=mode == "shared", of=a.of,
                                 budget=None if budget is None else budget / 100,
                                 max_loss=None if loss is None else loss / 100, eval_n=0 if loss is None else a.n,
                                 log=lambda msg, search=search: (print(msg, flush=True), search.append(msg)))
        for r in rows:
            t = r["task"]
            # a --max-losses row's compress already scored the stored task with these latents and n
            fd = r["fd_el0_after"] if "fd_el0_after" in r else \
                evaluate_task(small, t, small.task_meta(t)["data"], scorer=scorers[t])["value"]
            grid = dest / "grids" / f"{t}.png"
            save_before_after(stored_x[t], small, t, grid)
            # a task learned again (trained) is another run: its weights are not comparable
            lost = None if mode == "trained" else task_change_lost(bank, small, t)
            r.update({"mode": mode, "energy": energy, "budget_percent": budget, "max_loss_percent": loss,
                      "search": [m for m in search if m.startswith(f"'{t}' at ")] if loss is not None else None,
                      "FD-EL0": fd, "FD-EL0_before": before[t], "change_lost": lost, "grid": str(grid)})
            held = "-"
            if loss is not None:
                if t not in other:
                    other[t] = evaluate_task(bank, t, bank.task_meta(t)["data"], scorer=scorers[t], seed=1)["value"]
                fd1 = evaluate_task(small, t, small.task_meta(t)["data"], scorer=scorers[t], seed=1)["value"]
                r.update({"FD-EL0_seed1": fd1, "FD-EL0_before_seed1": other[t]})
                held = f"{other[t]:.1f} -> {fd1:.1f}, {100 * (fd1 / other[t] - 1):+.1f} %"
            results["runs"].append(r)
            lines.append(f"| {mode} | {kept} | {t} | {r['parameters_before']:,} -> {r['parameters_after']:,} | "
                         f"{100 * r['parameters_after'] / n_g:.2f} % | {before[t]:.1f} -> {fd:.1f} | "
                         f"{100 * (fd / before[t] - 1):+.1f} % | {'-' if lost is None else f'{lost:.2f}'} | {held} |")
        mean_pct = statistics.mean(100 * r["parameters_after"] / n_g for r in rows)
        worst = max(100 * (r["FD-EL0"] / r["FD-EL0_before"] - 1) for r in rows)
        lines.append(f"| {mode} | {kept} | **mean** | | **{mean_pct:.2f} %** | | worst **{worst:+.1f} %** | | |")
        atomic_write_json(out / "results.json", results)
        print("\n".join(lines[-len(rows) - 1:]), flush=True)
    atomic_write_bytes(out / "table.md", ("\n".join(lines) + "\n").encode())
    print(f"table in {out / 'table.md'}")


if __name__ == "__main__":
    main()
