"""The seed's Figure 1(b) on real data here: FD-EL0 against iterations, task after task.

    python benchmarks/sequence.py                       # every method (several hours on 2 CPU cores)
    python benchmarks/sequence.py --methods gan-memory finetune   # the seed's comparison (22-60 min)
    python benchmarks/sequence.py --iters 4 --eval-every 2 --n 16 --out /tmp/seq   # smoke test

From the shipped 32 px source, tasks mnist -> fashion-mnist -> emoji, each trained --iters
iterations with learn's default recipe (without flips unless --flip; --cfg adds options to it
for every method), scored every --eval-every iterations on --n generated vs --n real images:

- gan-memory: each task learns only its modulation parameters (ganmemory learn);
- finetune:   the whole source GAN fine-tuned, separately for each task;
- scratch:    the same GAN trained from random weights, separately for each task;
- sequential: one GAN fine-tuned through the whole sequence; after each task, every earlier
              task is scored again (forgetting);
- floor:      FD-EL0 between two disjoint real samples of each dataset.

Writes OUT/results.json, OUT/table.md (rows method x task, columns iterations), OUT/fd.png,
OUT/forgetting.md and a 64-sample grid per method and task under OUT/grids/. FD-EL0 is a
Fréchet distance on EfficientNet-Lite0 features, not FID.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path

import torch

from ganmemory.atomic import atomic_write_bytes, atomic_write_json
from ganmemory.data import load_data
from ganmemory.errors import GanMemoryError
from ganmemory.evaluate import Scorer, real_floor
from ganmemory.images import save_grid
from ganmemory.memory import MemoryBank
from ganmemory.metrics.features import build_extractor
from ganmemory.nets import Discriminator, Generator
from ganmemory.plots import plot_panels
from ganmemory.source import Source
from ganmemory.train import GANTrainer, TrainConfig
from ganmemory.train.loop import fit, fixed_latents
from ganmemory.train.precision import cpu_name

TASKS = ("mnist", "fashion-mnist", "emoji")


def train_plain(G, D, spec, cfg, every, out, scorer, z_dim, trainer=None):
    """Train every parameter of G and D on spec; returns (history, trainer)."""
    history = []
    trainer = trainer or GANTrainer(G, D, cfg)
    start = trainer.iteration

    def on_step(it, _stats):
        if (it - start) % every == 0 or it - start == cfg.iters:
            G_ema = trainer.G_ema.eval()
            r = scorer.score(lambda z: G_ema(z).clamp(-1, 1), z_dim)
            history.append((it - start, r["value"]))
            print(f"  {spec} iteration {it - start}: FD-EL0 {r['value']:.2f}", flush=True)

    on_step(start, {})
    trainer.cfg = TrainConfig(**{**cfg.to_dict(), "iters": start + cfg.iters})
    fit(trainer, load_data(spec, G.cfg.resolution), out, ckpt_meta={}, progress=False, on_step=on_step)
    return history, trainer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iters", type=int, default=1500)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--n", type=int, default=1000, help="generated and real images per score")
    p.add_argument("--out", default="runs/sequence")
    p.add_argument("--source", default=None, help="source file (default: the shipped one)")
    p.add_argument("--methods", nargs="+", default=["gan-memory", "finetune", "scratch", "sequential"])
    p.add_argument("--flip", action="store_true", help="random horizontal flips of the reals (learn's default; "
                   "off here, as in the demo: a mirrored digit or emoji is another symbol)")
    p.add_argument("--cfg", type=json.loads, default={}, metavar="JSON",
                   help="recipe options on top of learn's defaults for every method, as TrainConfig fields: "
                        "'{\"r1_every\": 4}'")
    p.add_argument("--report-only", metavar="RESULTS_JSON", help="only redraw the tables and plot of a finished run")
    a = p.parse_args()
    fixed = {"iters", "flip", "sample_every", "ckpt_every", "log_every"} & set(a.cfg)
    if fixed:
        p.error(f"--cfg: {', '.join(sorted(fixed))} is set by this benchmark")
    try:  # a bad field or value fails here, before the floor is computed
        cfg = TrainConfig(iters=a.iters, flip=a.flip, sample_every=0, ckpt_every=0, log_every=100, **a.cfg)
    except (TypeError, GanMemoryError) as e:
        p.error(f"--cfg: {e}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.report_only:
        write_report(json.loads(Path(a.report_only).read_text()), out)
        return
    t_all = time.perf_counter()
    src = Source.load(a.source)
    res, zd = src.cfg.resolution, src.cfg.z_dim
    scorers = {t: Scorer(t, res, "fd-el0", a.n) for t in TASKS}
    results = {"config": vars(a), "machine": f"{cpu_name()} ({platform.machine()}), {torch.get_num_threads()} "
               f"threads, torch {torch.__version__}", "date": time.strftime("%Y-%m-%d"),
               "source_hash": src.file_hash, "curves": {}, "params": {}}
    extractor = build_extractor("el0")
    results["floor"] = {t: real_floor(t, res, a.n, extractor, seed=1) for t in TASKS}
    print("floor:", results["floor"], flush=True)
    n_g = sum(p.numel() for p in src.G.parameters())

    def checkpoint() -> None:
        """Partial results survive a crash late in a two-hour run."""
        atomic_write_json(out / "results.json", results)

    checkpoint()

    if "gan-memory" in a.methods:
        bank = MemoryBank(out / "bank") if (out / "bank" / "bank.json").exists() else \
            MemoryBank.create(out / "bank", a.source)
        for t in TASKS:
            meta = bank.learn(t, t, cfg, progress=False, eval_every=a.eval_every, eval_n=a.n, overwrite=True)
            results["curves"][f"gan-memory/{t}"] = [(h["iteration"], h["FD-EL0"]) for h in meta["metrics"]]
            results["params"]["gan-memory"] = meta["task_parameters"]
            save_grid(bank.sample(t, 64, seed=0), out / "grids" / f"gan-memory_{t}.png", nrow=8, scale=2)
        # every old task re-scored after the whole sequence: it must not move
        results["after_sequence"] = {"gan-memory": {t: scorers[t].score(
            lambda z, t=t: bank.task_generator(t)(z).clamp(-1, 1), zd)["value"] for t in TASKS}}

    for method in ("finetune", "scratch"):
        if method not in a.methods:
            continue
        for t in TASKS:
            torch.manual_seed(0)
            G, D = Generator(src.cfg), Discriminator(src.cfg)
            if method == "finetune":
                G.load_state_dict(src.G.state_dict())
                D.load_state_dict(src.D.state_dict())
            hist, trainer = train_plain(G, D, t, cfg, a.eval_every, out / method / t, scorers[t], zd)
            results["curves"][f"{method}/{t}"] = hist
            with torch.no_grad():
                x = trainer.G_ema.eval()(fixed_latents(64, zd)).clamp(-1, 1)
            save_grid(x, out / "grids" / f"{method}_{t}.png", nrow=8, scale=2)
            checkpoint()
        results["params"][method] = n_g

    if "sequential" in a.methods:
        G, D = Generator(src.cfg), Discriminator(src.cfg)
        G.load_state_dict(src.G.state_dict())
        D.load_state_dict(src.D.state_dict())
        trainer, forgetting = None, {}
        for i, t in enumerate(TASKS):
            hist, trainer = train_plain(G, D, t, cfg, a.eval_every, out / "sequential" / t, scorers[t], zd, trainer)
            results["curves"][f"sequential/{t}"] = hist
            checkpoint()
            G_ema = copy.deepcopy(trainer.G_ema).eval()
            for old in TASKS[: i + 1]:
                v = scorers[old].score(lambda z: G_ema(z).clamp(-1, 1), zd)["value"]
                forgetting.setdefault(old, []).append((t, v))
        results["forgetting"] = forgetting
        results["params"]["sequential"] = n_g

    results["seconds"] = round(time.perf_counter() - t_all)
    checkpoint()
    write_report(results, out)


def write_report(results: dict, out: Path) -> None:
    """table.md, forgetting.md and fd.png from a results dict (also from a saved results.json)."""
    iters = sorted({it for c in results["curves"].values() for it, _ in c})
    lines = ["| method / task | " + " | ".join(f"{it}" for it in iters) + " | stored per task |",
             "|---|" + "---|" * (len(iters) + 1)]
    for key, curve in results["curves"].items():
        d = dict(curve)
        method = key.split("/")[0]
        lines.append(f"| {key} | " + " | ".join(f"{d[it]:.1f}" if it in d else "" for it in iters)
                     + f" | {results['params'][method]:,} |")
    for t, v in results["floor"].items():
        lines.append(f"| floor (real vs real) / {t} | " + " | ".join(f"{v:.1f}" for _ in iters) + " | |")
    atomic_write_bytes(out / "table.md", ("\n".join(lines) + "\n").encode())
    f_lines = ["| method / task | " + " | ".join(f"after {t}" for t in TASKS) + " |", "|---|" + "---|" * len(TASKS)]
    for old, vals in results.get("forgetting", {}).items():
        d = dict(vals)
        f_lines.append(f"| sequential / {old} | " + " | ".join(f"{d[t]:.1f}" if t in d else "" for t in TASKS) + " |")
    for old, after in results.get("after_sequence", {}).get("gan-memory", {}).items():
        own = dict(results["curves"][f"gan-memory/{old}"])[max(dict(results["curves"][f"gan-memory/{old}"]))]
        cells = [f"{own:.4f}" if t == old else (f"{after:.4f}" if t == TASKS[-1] else "") for t in TASKS]
        f_lines.append(f"| gan-memory / {old} | " + " | ".join(cells) + " |")
    atomic_write_bytes(out / "forgetting.md", ("\n".join(f_lines) + "\n").encode())
    panels = {t: {k.split("/")[0]: tuple(zip(*v)) for k, v in results["curves"].items() if k.endswith("/" + t)}
              for t in TASKS}
    panels = {t: c for t, c in panels.items() if c}
    for t, c in panels.items():
        iters_t = [it for xs, _ in c.values() for it in xs]
        c["floor (real vs real)"] = ([min(iters_t), max(iters_t)], [results["floor"][t]] * 2)
    plot_panels(panels, out / "fd.png", xlabel="iteration", ylabel="FD-EL0",
                suptitle="FD-EL0 against iterations, task by task (EfficientNet-Lite0 features, not FID)")
    print((out / "table.md").read_text())
    print(f"total {results['seconds'] / 60:.1f} min; results in {out}")


if __name__ == "__main__":
    main()
