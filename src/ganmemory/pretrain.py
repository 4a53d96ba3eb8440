"""Training a source GAN from scratch (``ganmemory pretrain``)."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from .data import load_data
from .distributed import DistContext, barrier
from .errors import GanMemoryError, TrainingDiverged
from .nets import Discriminator, Generator, NetConfig
from .source import Source
from .store import read_meta
from .train import GANTrainer, TrainConfig
from .train.loop import fit, load_checkpoint, save_checkpoint
from .train.precision import resolve


def pretrain(data_spec: str, out_dir: str | os.PathLike, net: NetConfig, train: TrainConfig, *,
             resume: bool = False, progress: bool = True, source_dtype: torch.dtype = torch.float32,
             device: str = "cpu", dedupe: bool = False, dist: DistContext | None = None,
             init: str | os.PathLike | None = None) -> dict[str, Any]:
    """Train a source GAN on ``data_spec``; writes ``out_dir/source.safetensors`` at the end.

    With ``resume`` it continues from ``out_dir/checkpoint.safetensors`` (same data and
    configs required). ``dedupe`` drops duplicate and blank images first (see
    ``ImageSet.deduplicated``). ``init`` starts G, its EMA and D from a source file's weights
    instead of at random (a source saves only the EMA generator, so G starts there too, and
    both optimizers start afresh); ``net`` must be that source's network. Returns a summary
    including wall time and the source's hash.
    """
    dist = dist or DistContext(device=device)
    device = dist.device
    train.check_divisible(dist.world_size)
    out = Path(out_dir)
    ckpt = out / "checkpoint.safetensors"
    if ckpt.exists() and not resume:
        raise GanMemoryError(f"'{out}' already holds a training checkpoint: pass --resume to continue "
                             "it, or choose another --out")
    if resume and not ckpt.exists():
        raise GanMemoryError(f"--resume given but '{ckpt}' does not exist")
    start = Source.load(init) if init is not None else None
    if start is not None and start.cfg != net:
        raise GanMemoryError(f"--init '{init}' is a source of network {start.cfg.to_dict()}, not "
                             f"{net.to_dict()}: give its --resolution, --nf, --z-dim and --output")
    init_record = _init_record(start)
    meta = read_meta(ckpt) if resume else {}
    train = train.continuing(meta.get("train"))  # under "auto", a resumed run keeps its precision
    train = replace(train, precision=resolve(train.precision, device, print if progress and dist.is_writer
                                             else (lambda _: None)))
    if resume:
        if meta.get("data") != data_spec or meta.get("net") != net.to_dict() or \
                bool(meta.get("dedupe")) != dedupe:
            raise GanMemoryError(f"cannot resume '{ckpt}': it was trained with data '{meta.get('data')}' "
                                 f"and network {meta.get('net')}, not '{data_spec}' and {net.to_dict()}")
        if meta.get("init") != init_record:
            was = (meta.get("init") or {}).get("hash")
            raise GanMemoryError(f"cannot resume '{ckpt}': it started from "
                                 f"{f'the source with hash {was}' if was else 'random weights'}, and "
                                 f"--init {'names another' if start else 'must name it again'}")
        if not train.resumes(meta.get("train", {})):
            raise GanMemoryError(f"cannot resume '{ckpt}': training options differ from the checkpoint's "
                                 f"({train.differences(meta.get('train', {}))}); only --iters may change")
    data = load_data(data_spec, net.resolution)
    if dedupe:
        data = data.deduplicated()
    if data.note and progress and dist.is_writer:
        print(f"note: {data.note}")
    if net.nlabels > 1 and train.conditional and data.labels.max() >= net.nlabels:
        raise GanMemoryError(f"data '{data_spec}' has {len(data.classes)} classes but the network "
                             f"has {net.nlabels} labels")
    torch.manual_seed(train.seed)
    G, D = Generator(net), Discriminator(net)
    if start is not None:
        G.load_state_dict(start.G.state_dict())
        D.load_state_dict(start.D.state_dict())
    G, D = G.to(device), D.to(device)
    trainer = GANTrainer(G, D, train, dist=dist)
    ckpt_meta = {"data": data_spec, "net": net.to_dict(), "train": train.to_dict(), "dedupe": dedupe,
                 "init": init_record}
    prior_seconds = 0.0
    if resume:
        prior_seconds = float(load_checkpoint(trainer, ckpt).get("seconds", 0.0))
    t0 = time.perf_counter()
    try:
        summary = fit(trainer, data, out, ckpt_meta={**ckpt_meta, "seconds": prior_seconds},
                      progress=progress, desc=f"pretrain {data_spec}")
    except TrainingDiverged as exc:
        where = " into another --out" if ckpt.exists() else ""
        raise GanMemoryError(f"pretraining on '{data_spec}' diverged at iteration {exc.iteration} (its losses are "
                             f"no longer finite); no source was written to '{out}'. Start it again with a lower "
                             f"--lr (this run: {train.lr_g:g}) or another --seed{where}") from exc
    seconds = prior_seconds + time.perf_counter() - t0
    if not dist.is_writer:
        barrier()
        return {**summary, "wall_seconds": seconds, "source": None, "hash": None}
    # the checkpoint written at the end of fit carries the seconds known before it; refresh it
    save_checkpoint(trainer, ckpt, {**ckpt_meta, "seconds": seconds})
    info = {"data": data_spec, "dedupe": dedupe, "images": len(data), "iterations": trainer.iteration,
            "train": train.to_dict(), "wall_seconds": round(seconds, 1),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "processes": dist.world_size}
    if init_record is not None:
        info["init"] = init_record
    source = Source(net, trainer.G_ema.cpu(), trainer.D.cpu(), info)
    h = source.save(out / "source.safetensors", dtype=source_dtype)
    barrier()
    return {**summary, "wall_seconds": seconds, "source": str(out / "source.safetensors"), "hash": h}


def _init_record(start: Source | None) -> dict[str, Any] | None:
    """What a run that began from the source ``start`` records of it: its hash and how it was trained."""
    if start is None:
        return None
    keep = ("data", "dedupe", "images", "iterations", "train", "wall_seconds", "init")
    return {"hash": start.file_hash, **{k: start.info[k] for k in keep if k in start.info}}
