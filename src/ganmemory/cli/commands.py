"""The ``ganmemory`` commands: each takes the parsed options, calls the library and prints what
it did."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import GanMemoryError
from .parser import _net_cfg, _strategy_fields, _train_cfg


def cmd_data(a: argparse.Namespace) -> int:
    from ..data import BUILTINS, fetch, locate
    from ..data.builtin import cache_root
    if a.data_command == "list":
        print(f"cache: {cache_root()}")
        print(f"{'name':<14} {'fetched':<8} {'package':<34} where / what")
        for name, b in BUILTINS.items():
            where = locate(name)
            pkg = f"{b.source}:{b.package}"
            print(f"{name:<14} {'yes' if where else 'no':<8} {pkg:<34} {where or b.description}")
        return 0
    for name in a.names:
        print(f"{name}: {fetch(name)}")
    return 0


def cmd_pretrain(a: argparse.Namespace) -> int:
    import torch
    from ..distributed import setup
    from ..pretrain import pretrain
    ctx = setup(a.device)
    res = pretrain(a.data, a.out, _net_cfg(a), _train_cfg(a), resume=a.resume,
                   source_dtype=torch.float16 if a.fp16 else torch.float32, dedupe=a.dedupe, dist=ctx,
                   init=a.init)
    if not ctx.is_writer:
        return 0
    print(f"source written to {res['source']} (hash {res['hash']}, {res['iterations']} iterations, "
          f"{res['wall_seconds'] / 60:.1f} min)")
    return 0


def cmd_init(a: argparse.Namespace) -> int:
    from ..memory import MemoryBank
    bank = MemoryBank.create(a.out, a.source)
    print(f"created bank {bank.root} over source {bank.source.file_hash} ({bank.cfg.resolution} px)")
    return 0


def cmd_learn(a: argparse.Namespace) -> int:
    from ..memory import MemoryBank
    from ..distributed import setup
    from ..compress import LowRankConfig
    options = {k: v for k, v in (("energy", a.lowrank_energy), ("init", a.lowrank_init)) if v is not None}
    if options and not a.lowrank:
        raise GanMemoryError("--lowrank-energy and --lowrank-init need --lowrank")
    lowrank = LowRankConfig(**options) if a.lowrank else None
    ctx = setup(a.device)
    bank = MemoryBank(a.memory)
    meta = bank.learn(a.task, a.data, _train_cfg(a, conditional=a.conditional, flip=not a.no_flip), resume=a.resume,
                      overwrite=a.overwrite, progress=ctx.is_writer, log=print if ctx.is_writer else (lambda _msg: None),
                      dist=ctx, eval_every=a.eval_every, eval_n=a.eval_n, eval_metric=a.eval_metric,
                      eval_data=a.eval_data, lowrank=lowrank)
    if not ctx.is_writer:
        return 0
    print(f"learned task '{a.task}' ({meta['iterations']} iterations, {meta['seconds'] / 60:.1f} min, "
          f"{meta['task_parameters']:,} parameters)")
    return 0


def _misplaced_options(a: argparse.Namespace) -> list[str]:
    """The options given to ``evaluate`` that its --metric does not use."""
    cas_only = {"--per-class": a.per_class, "--cas-steps": a.cas_steps, "--ceiling": a.ceiling}
    given = {"--n": a.n, "--inception-weights": a.inception_weights} if a.metric == "cas" else {
        **cas_only, **({} if a.metric == "fid" else {"--inception-weights": a.inception_weights})}
    return [option for option, value in given.items() if value is not None]


def cmd_evaluate(a: argparse.Namespace) -> int:
    from ..atomic import atomic_write_json
    from ..evaluate import EVAL_N, evaluate_task
    from ..memory import MemoryBank
    misplaced = _misplaced_options(a)
    if misplaced:
        raise GanMemoryError(f"{' and '.join(misplaced)} {'does' if len(misplaced) == 1 else 'do'} not apply to "
                             f"--metric {a.metric}")
    if a.metric == "cas":
        return _evaluate_cas(a)
    res = evaluate_task(MemoryBank(a.memory), a.task, a.data, a.metric, a.n or EVAL_N, a.seed, a.inception_weights)
    extra = f" +- {res['std']:.4f}" if "std" in res else ""
    print(f"task '{a.task}' vs '{a.data}': {res['metric']} = {res['value']:.4f}{extra} "
          f"({res['n_generated']} generated, {res['n_real']} real; features: {res['feature_network']})")
    if a.json:
        atomic_write_json(a.json, res)
    return 0


def _evaluate_cas(a: argparse.Namespace) -> int:
    from ..atomic import atomic_write_json
    from ..evaluate import CASProtocol, classification_accuracy_score, real_data_accuracy
    from ..memory import MemoryBank
    bank = MemoryBank(a.memory)
    default = CASProtocol()
    protocol = CASProtocol(per_class=a.per_class or default.per_class, steps=a.cas_steps or default.steps, seed=a.seed)
    res = classification_accuracy_score(bank, a.task, a.data, protocol)
    rows = [("trained on the task's images (CAS)", res)]
    if a.ceiling:
        res["ceiling"] = real_data_accuracy(a.ceiling, a.data, bank.cfg.resolution, protocol)
        rows.append((f"trained on real images of '{a.ceiling}'", res["ceiling"]))
    print(f"task '{a.task}' vs '{a.data}': CAS = {100 * res['value']:.2f} % ({protocol.per_class} images per class, "
          f"{protocol.steps} classifier steps, tested on {res['n_test']} real images)")
    classes = list(res["per_class"])
    width = max(len(label) for label, _ in rows)
    print(f"{'accuracy on each class':<{width}}  " + " ".join(f"{c[:7]:>7}" for c in classes) + "      all")
    for label, r in rows:
        print(f"{label:<{width}}  " + " ".join(f"{100 * r['per_class'][c]:6.1f}%" for c in classes) +
              f"  {100 * r['value']:6.2f}%")
    if a.json:
        atomic_write_json(a.json, res)
    return 0


def cmd_list(a: argparse.Namespace) -> int:
    from ..memory import MemoryBank
    bank = MemoryBank(a.memory)
    n_task, n_g = bank.generator_param_count()
    print(f"bank {bank.root}: source {bank.source.file_hash}, {bank.cfg.resolution} px, nf {bank.cfg.nf}, "
          f"generator {n_g:,} parameters; each task trains {n_task:,} of them ({100 * n_task / n_g:.1f} % of G)")
    head = f"{'task':<20} {'data':<28} {'iters':>7} {'parameters':>11} {'% of G':>7} {'bytes':>11}  kind"
    print(head)
    print("-" * len(head))
    damaged = 0
    for t in bank.task_infos():
        if t.error:
            print(f"{t.name:<20} DAMAGED: {t.error}")
            damaged += 1
            continue
        m = t.meta
        n = m.get("task_parameters", n_task)
        kind = [f"conditional, {m['n_classes']} classes"] if m.get("n_classes") else []
        if m.get("compressed"):
            c = m["compressed"]
            mode = c.get("mode", "per-task")
            of = "" if mode == "lowrank-trained" else f" of the {c.get('of', 'matrix')}"
            kept = f"energy {c['energy']}" if "energy" in c else f"budget {100 * c['budget']:g} % of G"
            kind.append(f"compressed ({mode}{of}, {kept})")
        print(f"{t.name:<20} {m.get('data', '?'):<28.28} {m.get('iterations', 0):>7} {n:>11,} "
              f"{100 * n / n_g:>6.1f}% {t.bytes:>11,}  {'; '.join(kind) or 'unconditional'}")
    removed, kept = bank.clean_leftovers()
    for item in removed:
        print(f"removed {item.path}: left by an interrupted save of task '{item.task}'")
    for item in kept:
        print(f"unfinished learn of task '{item.task}' in {item.path}: continue it with 'learn --resume', "
              f"or clear it with 'remove --task {item.task}'" if item.kind == "unfinished" else
              f"{item.path}: a save of task '{item.task}' is under way in another process")
    if damaged:
        print(f"{damaged} damaged task(s): the others are intact; remove a damaged one with "
              "'ganmemory remove --task NAME'", file=sys.stderr)
    return 1 if damaged else 0


def cmd_interpolate(a: argparse.Namespace) -> int:
    from ..images import save_grid
    from ..memory import MemoryBank
    bank = MemoryBank(a.memory)
    x = bank.interpolate(a.task_a, a.task_b, steps=a.steps, n=a.n, seed=a.seed, mode=a.mode)
    save_grid(x, a.out, nrow=a.steps, scale=2)
    print(f"wrote {a.n} x {a.steps} interpolation ({a.mode}) from '{a.task_a}' to '{a.task_b}' to {a.out}")
    return 0


def _remove_new_bank(root: Path, existed: bool) -> None:
    """Take back what ``MemoryBank.create`` wrote into ``root`` (the folder itself too, unless it
    was there, empty, before)."""
    import shutil
    if existed:
        for child in root.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    else:
        shutil.rmtree(root)


def cmd_compress(a: argparse.Namespace) -> int:
    import torch
    from ..memory import MemoryBank
    from .parser import DEFAULT_ENERGY
    bank = MemoryBank(a.memory)
    names = a.task or bank.tasks()
    for name in names:
        bank.task_meta(name)  # unknown tasks fail here, before anything is written
    budget = None if a.budget is None else a.budget / 100
    max_loss = None if a.max_loss is None else a.max_loss / 100
    energy = None if budget is not None or max_loss is not None else DEFAULT_ENERGY if a.energy is None else a.energy
    existed = a.out is not None and Path(a.out).exists()
    out = MemoryBank.create(a.out, bank.root / "source.safetensors") if a.out else None
    try:
        rows = bank.compress(names, energy, torch.float16 if a.dtype == "fp16" else torch.float32, out, a.shared,
                             eval_n=0 if a.no_eval else a.eval_n, log=lambda msg: print(msg, flush=True), of=a.of,
                             budget=budget, max_loss=max_loss)
    except GanMemoryError:
        if out is not None and not out.tasks():  # refused before any task was written: undo the new bank
            _remove_new_bank(out.root, existed)
        raise
    target = out or bank
    print(f"{'task':<20} {'parameters':>21} {'% of G':>15} {'bytes':>23} {'FD-EL0':>17}")
    for r in rows:
        g = r["generator_parameters"]
        fd = f"{r['fd_el0_before']:.2f} -> {r['fd_el0_after']:.2f}" if "fd_el0_after" in r else "-"
        print(f"{r['task']:<20} {r['parameters_before']:>9,} -> {r['parameters_after']:>9,} "
              f"{100 * r['parameters_before'] / g:>5.1f} -> {100 * r['parameters_after'] / g:>5.1f}% "
              f"{r['bytes_before']:>10,} -> {r['bytes_after']:>10,} {fd:>17}")
    if a.shared:
        print(f"shared bases: {(target.root / 'bases.safetensors').stat().st_size:,} bytes in "
              f"{target.root / 'bases.safetensors'}; each task's parameters count the columns it added")
    kept = (f"energy {energy} of each matrix's {a.of}" if energy is not None else
            f"each task within {a.budget:g} % of G, ranks spread over its matrices' {a.of}s" if budget is not None else
            f"each task the least of G at which it lost at most {a.max_loss:g} % (FD-EL0, and its images' way "
            f"from the source's), ranks spread over its matrices' {a.of}s")
    scored = "" if a.no_eval else f"FD-EL0 on {a.eval_n} EfficientNet-Lite0 features (not FID); "
    print(f"{kept}, {a.dtype}; {scored}tasks written to {target.root}")
    return 0


def cmd_remove(a: argparse.Namespace) -> int:
    from ..memory import MemoryBank
    removed = MemoryBank(a.memory).remove(a.task)
    print(f"removed task '{a.task}': {', '.join(removed)}")
    return 0


def cmd_merge(a: argparse.Namespace) -> int:
    from ..memory import MemoryBank
    added = MemoryBank(a.memory).merge(a.others)
    print(f"merged {len(added)} task(s): {', '.join(added) or 'none'}")
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from ..demo import run_demo
    report = run_demo(a.out, iters=a.iters, source=a.source, seed=a.seed, eval_n=a.eval_n, minutes=a.minutes)
    return 0 if report["all_unchanged"] else 1


def cmd_lifelong(a: argparse.Namespace) -> int:
    from dataclasses import fields
    from ..configs import option_name
    from ..lifelong.config import LifelongConfig
    from ..lifelong.runner import run_lifelong
    from ..lifelong.strategies import get_strategy
    from ..lifelong.tasks import parse_tasks
    tasks = parse_tasks(a.tasks, a.benchmark)
    known = _strategy_fields()
    given = {name: getattr(a, name) for name in known if getattr(a, name) is not None}
    config = {f.name for f in fields(LifelongConfig)}
    cfg = LifelongConfig(iters=a.iters, batch_size=a.batch, lr=a.lr, classifier=a.classifier, seed=a.seed,
                         resolution=a.resolution, **{k: v for k, v in given.items() if k in config})
    for name in given:
        if a.strategy not in known[name][1]:
            raise GanMemoryError(f"{option_name(name)} is for {' and '.join(known[name][1])}, not {a.strategy}")
    cls = get_strategy(a.strategy)
    options = cls.Options(**{f.name: given[f.name] for f in fields(cls.Options) if f.name in given})
    res = run_lifelong(tasks, a.strategy, cfg, Path(a.out), strategy_kwargs=cls.init_kwargs(options, cfg, a.device),
                       device=a.device, resume=a.resume)
    forgetting = res["average_forgetting"]  # None after one task: nothing could be forgotten yet
    forgot = "" if forgetting is None else f", average forgetting {100 * forgetting:.2f} points"
    print(f"{a.strategy}: final average accuracy {100 * res['final_average_accuracy']:.2f} %{forgot}; "
          f"results in {a.out}")
    return 0


def cmd_sample(a: argparse.Namespace) -> int:
    from ..images import save_grid, to_uint8
    if not a.out and not a.out_dir:
        raise GanMemoryError("give --out GRID.png or --out-dir DIR for the samples")
    if (a.memory is None) != (a.task is None):
        raise GanMemoryError("--memory and --task go together")
    if a.memory and a.source:
        raise GanMemoryError("give either --memory/--task or --source, not both")
    if a.memory:
        from ..memory import MemoryBank
        x = MemoryBank(a.memory).sample(a.task, a.n, seed=a.seed, classes=a.classes)
    else:
        if a.classes:
            raise GanMemoryError("--class needs --memory and --task (a conditional task)")
        from ..source import Source
        x = Source.load(a.source).sample(a.n, seed=a.seed)
    if a.out:
        save_grid(x, a.out, scale=a.scale)
        print(f"wrote {len(x)} samples to {a.out}")
    if a.out_dir:
        from PIL import Image
        out = Path(a.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(to_uint8(x)):
            Image.fromarray(img).save(out / f"{i:05d}.png")
        print(f"wrote {len(x)} images to {out}/")
    return 0


def cmd_import(a: argparse.Namespace) -> int:
    import torch
    from ..convert import import_gan_stability
    src = import_gan_stability(a.ckpt, a.out, prefer_ema=not a.no_ema,
                               dtype=torch.float16 if a.fp16 else torch.float32)
    c = src.cfg
    print(f"wrote {a.out}: {c.resolution} px, nf {c.nf}, z {c.z_dim}, {c.nlabels} label(s), "
          f"hash {src.file_hash}")
    return 0

