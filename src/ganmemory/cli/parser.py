"""The ``ganmemory`` argument tables: one sub-parser per command, option types that refuse bad
values while parsing, and the helpers that turn parsed options into typed configs."""

from __future__ import annotations

import argparse
import math
from typing import Any



EPILOG_MAIN = """\
examples:
  ganmemory demo                                   # learn mnist, fashion-mnist, emoji from the shipped source
  ganmemory data list                              # built-in datasets and whether they are fetched
  ganmemory data fetch mnist
  ganmemory pretrain --data openclipart --resolution 32 --iters 20000 --out runs/src
  ganmemory sample -n 64 --seed 0 --out grid.png   # from the shipped source
"""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "(default:" in text or action.default is None:  # says its own default, or has none to show
            return text
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """argparse, with a refused option as one line (not the whole usage) and a pointer to --help."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _add(sub, name: str, help_: str, epilog: str = "") -> argparse.ArgumentParser:
    # argparse %-formats help strings (not descriptions): a literal % must be doubled there
    return sub.add_parser(name, help=help_.replace("%", "%%"), description=help_, epilog=epilog,
                          formatter_class=_Formatter)


def _whole(text: str, low: int, high: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if not low <= v <= high:
        raise argparse.ArgumentTypeError(f"{v} must be in [{low:,}, {high:,}]")
    return v


def _positive(text: str) -> int:
    return _whole(text, 1, 2**62)


def _nonnegative(text: str) -> int:
    return _whole(text, 0, 2**62)


def _seed(text: str) -> int:
    from ..configs import MAX_SEED
    return _whole(text, 0, MAX_SEED)


def _count(high: int):
    """A whole number in [1, high]: images or steps a command draws at once."""
    def parse(text: str) -> int:
        return _whole(text, 1, high)
    parse.__name__ = "count"  # argparse names the type in its error
    return parse


def _finite(text: str) -> float:
    """A finite number (argparse's float takes 'nan' and 'inf')."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"'{text}' is not a finite number")
    return v


def _fraction(text: str) -> float:
    """A number in (0, 1] (a share, an energy)."""
    v = _finite(text)
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"{v} must be in (0, 1]")
    return v


def _percent(text: str) -> float:
    """A percentage in (0, 100]."""
    v = _finite(text)
    if not 0 < v <= 100:
        raise argparse.ArgumentTypeError(f"{v:g} must be in (0, 100]")
    return v


def _positive_float(text: str) -> float:
    """A finite number above 0 (minutes, seconds)."""
    v = _finite(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{v:g} must be above 0")
    return v


DEFAULT_ENERGY = 0.9  # what compress keeps of each matrix when neither --energy nor --budget is given
MAX_DRAW = 10_000  # images one sample or interpolate call draws into memory at once


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ganmemory", formatter_class=_Formatter, epilog=EPILOG_MAIN,
                                description="Lifelong generative memory: GAN Memory with No Forgetting "
                                            "(Cong et al., NeurIPS 2020).")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    from ..data.builtin import BUILTINS
    from ..metrics import METRICS

    # data
    d = _add(sub, "data", "list or fetch the built-in offline datasets",
             "examples:\n  ganmemory data list\n  ganmemory data fetch emoji")
    dsub = d.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    _add(dsub, "list", "show built-in datasets, whether each is fetched, and where")
    f = _add(dsub, "fetch", "install or unpack a built-in dataset into the cache")
    f.add_argument("names", nargs="+", metavar="NAME", help=f"one of: {', '.join(BUILTINS)}")

    # pretrain
    t = _add(sub, "pretrain", "train a source GAN from scratch, or onward from a source",
             "examples:\n  ganmemory pretrain --data openclipart --resolution 32 --iters 20000 --out runs/src\n"
             "  ganmemory pretrain --data ./my_images --resolution 64 --iters 50000 --out runs/src64 --output tanh\n"
             "  ganmemory pretrain --data openclipart --iters 30000 --out runs/src --resume   # continue\n"
             "  ganmemory pretrain --data openclipart --init runs/src/source.safetensors --iters 20000 --out runs/src2\n"
             "  ganmemory pretrain --data openclipart+icons --dedupe --out runs/src3   # two built-in sets\n"
             "  torchrun --nproc_per_node 2 -m ganmemory pretrain --data openclipart --out runs/src  # 2 processes\n"
             "The source file is written to OUT/source.safetensors at the end.")
    t.add_argument("--data", required=True, metavar="SPEC",
                   help="built-in dataset spec, image folder, or a '+'-joined union of them")
    t.add_argument("--out", required=True, metavar="DIR", help="run folder: checkpoint, log, samples, source")
    _add_net_args(t)
    _add_train_args(t, preset="paper")
    t.add_argument("--resume", action="store_true", help="continue OUT/checkpoint.safetensors")
    t.add_argument("--init", metavar="FILE", help="start G, its EMA and D from this source file's weights "
                                                  "(fresh optimizers; same network options) instead of at random")
    t.add_argument("--fp16", action="store_true", help="store the final source in float16 (half the size)")
    t.add_argument("--dedupe", action="store_true", help="drop exact duplicate and blank images first")
    t.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")

    # memory bank
    b = _add(sub, "init", "create a memory bank over a source",
             "examples:\n  ganmemory init --out bank/                      # over the shipped source\n"
             "  ganmemory init --source runs/src/source.safetensors --out bank/")
    b.add_argument("--source", metavar="FILE", help="source file (default: the shipped source)")
    b.add_argument("--out", required=True, metavar="BANK", help="new bank folder")

    ln = _add(sub, "learn", "learn a new task into a bank (only its own small parameters are trained)",
              "examples:\n  ganmemory learn --memory bank/ --task digits --data mnist --iters 2000\n"
              "  ganmemory learn --memory bank/ --task flowers --data ./data/102flowers --iters 60000\n"
              "  ganmemory learn --memory bank/ --task flowers --data ./data/102flowers --iters 60000 --resume\n"
              "  ganmemory learn --memory bank/ --task d01 --data mnist:0,1 --conditional --no-flip\n"
              "  ganmemory learn --memory bank/ --task shoes --data ./data/shoes --lowrank --lowrank-energy 0.9\n"
              "  torchrun --nproc_per_node 4 -m ganmemory learn --memory bank/ --task x --data mnist --device cuda\n"
              "Under torchrun each process trains its slice of every batch (--batch is the global batch);\n"
              "only rank 0 writes files.\n"
              "--lowrank trains the generator's conv gamma/beta as start + U diag(s) V^T + R over bases the\n"
              "bank accumulates, penalising trailing s; afterwards R's leading singular vectors join the\n"
              "bases and the task keeps only s (docs/method.md, section 4). Such a task cannot be trained further.")
    ln.add_argument("--memory", required=True, metavar="BANK", help="bank folder")
    ln.add_argument("--task", required=True, metavar="NAME", help="name of the new task")
    ln.add_argument("--data", required=True, metavar="SPEC", help="built-in dataset spec or image folder")
    _add_train_args(ln, iters=2000, layout=True)
    ln.add_argument("--resume", action="store_true", help="continue this task's unfinished learn")
    ln.add_argument("--conditional", action="store_true",
                    help="class-conditional task: learns the data's classes (sample one with --class)")
    ln.add_argument("--no-flip", action="store_true", help="no random horizontal flips (e.g. digits)")
    ln.add_argument("--overwrite", action="store_true", help="replace an existing task of that name")
    ln.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    ln.add_argument("--eval-every", type=_nonnegative, default=0, metavar="K",
                    help="score the task every K iterations and at the end (0: never); plot in BANK/plots/")
    ln.add_argument("--eval-n", type=_positive, default=1000, help="images per score during learn")
    ln.add_argument("--eval-metric", default="fd-el0", choices=[k for k, m in METRICS.items() if not m.needs_weights],
                    help="score during learn")
    ln.add_argument("--eval-data", metavar="SPEC", help="score against this data (default: the training data), "
                    "e.g. mnist@test")
    ln.add_argument("--lowrank", action="store_true", help="train in the bank's accumulated low-rank bases")
    from ..compress import LowRankConfig
    low = LowRankConfig()
    ln.add_argument("--lowrank-energy", type=_finite, metavar="E",
                    help=f"with --lowrank: each matrix keeps this fraction of its squared change when stored "
                         f"(default: {low.energy})")
    ln.add_argument("--lowrank-init", choices=("source", "previous"),
                    help="with --lowrank: start the coefficients at zero, so the task starts at the source, or at "
                         f"the last low-rank task's (the paper's choice; worse between unlike tasks) (default: {low.init})")

    ev = _add(sub, "evaluate", "score a task against real data (FD-EL0, KID-EL0, FID with Inception weights, "
                               "or CAS for a class-conditional task)",
              "examples:\n  ganmemory evaluate --memory bank/ --task digits --data mnist@test --n 5000\n"
              "  ganmemory evaluate --memory bank/ --task digits --data mnist --metric kid-el0\n"
              "  ganmemory evaluate --memory bank/ --task digits --data mnist --metric fid \\\n"
              "      --inception-weights pt_inception-2015-12-05-6726825d.pth\n"
              "  ganmemory evaluate --memory bank/ --task digits --data mnist@test --metric cas --ceiling mnist\n"
              "FD-EL0 and KID-EL0 use EfficientNet-Lite0 features: FID-like, not comparable with published FID.\n"
              "CAS (Classification Accuracy Score): the library's small CNN trained only on the task's images\n"
              "(--per-class of each class, --cas-steps Adam steps, batch 64, seed --seed), tested on --data's\n"
              "real images of the same classes; printed with each class's accuracy. --ceiling trains the same\n"
              "classifier on as many real images per class of another split, the score to compare with.")
    from ..evaluate import EVAL_N, CASProtocol
    cas = CASProtocol()
    ev.add_argument("--memory", required=True, metavar="BANK", help="bank folder")
    ev.add_argument("--task", required=True, metavar="NAME", help="task to score")
    ev.add_argument("--data", required=True, metavar="SPEC", help="real data to compare with")
    ev.add_argument("--n", type=_positive, metavar="N",
                    help=f"generated and real images (real capped at the data size; default {EVAL_N}); not with cas")
    ev.add_argument("--metric", default="fd-el0", choices=tuple(METRICS) + ("cas",), help="score")
    ev.add_argument("--inception-weights", metavar="PATH", help="pytorch-fid's InceptionV3 weights (--metric fid only)")
    ev.add_argument("--seed", type=_seed, default=0,
                    help="seed of the generated latents (with --metric cas, also of the classifier)")
    ev.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    ev.add_argument("--per-class", type=_count(MAX_DRAW), metavar="N",
                    help=f"with --metric cas: generated images per class the classifier trains on (default {cas.per_class})")
    ev.add_argument("--cas-steps", type=_count(1_000_000), metavar="N",
                    help=f"with --metric cas: the classifier's Adam steps (default {cas.steps})")
    ev.add_argument("--ceiling", metavar="SPEC",
                    help="with --metric cas: also train the classifier on real images of SPEC (e.g. mnist)")

    ls = _add(sub, "list", "list the tasks of a bank: data, iterations, parameters, % of G, bytes",
              "example:\n  ganmemory list --memory bank/")
    ls.add_argument("--memory", required=True, metavar="BANK", help="bank folder")

    it = _add(sub, "interpolate", "images along the path between two tasks' parameters",
              "examples:\n  ganmemory interpolate --memory bank/ --from mnist --to emoji --out strip.png\n"
              "  ganmemory interpolate --memory bank/ --from mnist --to emoji --mode blocks --steps 10")
    it.add_argument("--memory", required=True, metavar="BANK", help="bank folder")
    it.add_argument("--from", dest="task_a", required=True, metavar="A", help="start task")
    it.add_argument("--to", dest="task_b", required=True, metavar="B", help="end task")
    it.add_argument("--steps", type=_count(256), default=8, help="images per row (2 to 256)")
    it.add_argument("-n", type=_count(256), default=4, help="rows (latents, at most 256)")
    it.add_argument("--seed", type=_seed, default=0, help="seed of the latents")
    it.add_argument("--mode", choices=("whole", "blocks"), default="whole",
                    help="whole: all parameters together; blocks: Linear, then block by block")
    it.add_argument("--out", default="interpolation.png", metavar="PNG", help="strip PNG to write")

    cp = _add(sub, "compress", "store tasks as truncated SVDs of their gamma/beta changes (smaller files)",
              "examples:\n  ganmemory compress --memory bank/ --out bank_small/ --energy 0.9 --dtype fp16\n"
              "  ganmemory compress --memory bank/ --in-place --task digits --energy 0.95 --no-eval\n"
              "  ganmemory compress --memory bank/ --out bank_shared/ --shared --energy 0.9   # bases shared by tasks\n"
              "  ganmemory compress --memory bank/ --out bank_5pc/ --budget 5 --dtype fp16   # 5 % of G per task\n"
              "  ganmemory compress --memory bank/ --out bank_10pc/ --max-loss 10 --dtype fp16   # FD-EL0 and images 10 % at most\n"
              "Compressed tasks sample, interpolate and replay as before but can no longer be resumed.")
    cp.add_argument("--memory", required=True, metavar="BANK", help="bank whose tasks are compressed")
    where = cp.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", metavar="NEW_BANK", help="write the compressed tasks into a new bank (keeps the original)")
    where.add_argument("--in-place", action="store_true", help="replace the tasks in BANK")
    cp.add_argument("--task", action="append", metavar="NAME", help="task to compress (repeatable; default all)")
    keep = cp.add_mutually_exclusive_group()
    keep.add_argument("--energy", type=_fraction,
                      help=f"fraction of sum(s^2) each matrix keeps, in (0, 1] (default {DEFAULT_ENERGY})")
    keep.add_argument("--budget", type=_percent, metavar="PERCENT",
                      help="instead of --energy: the parameters each task may keep, in %% of the generator's (as "
                           "'list' shows them); ranks go where they keep the most of each matrix per parameter. "
                           "Per-task only")
    keep.add_argument("--max-loss", type=_positive_float, metavar="PERCENT",
                      help="instead of --energy: each task the smallest --budget at which it loses at most "
                           "PERCENT %%: its FD-EL0 (on --eval-n images, the latents of the 'before' score) rises "
                           "at most PERCENT %%, and its images move back towards the source's by at most PERCENT "
                           "%% of the way the task moved them (RMS over pixels, same latents). Searched by "
                           "bisection, 7 steps at most. Per-task only")
    cp.add_argument("--dtype", choices=("fp32", "fp16"), default="fp32", help="stored precision")
    cp.add_argument("--shared", action="store_true",
                    help="bases shared by all tasks, grown task by task (a task adds columns only when needed)")
    cp.add_argument("--of", choices=("change", "matrix"), default="change",
                    help="what is factorised: each matrix's change from the source (the source's part is "
                         "rebuilt exactly), or the matrix itself, as banks compressed before --of existed")
    cp.add_argument("--eval-n", type=_positive, default=1000, help="images per FD-EL0 score, before and after")
    cp.add_argument("--no-eval", action="store_true", help="skip the FD-EL0 scores")

    rm = _add(sub, "remove", "delete a task from a bank", "example:\n  ganmemory remove --memory bank/ --task digits")
    rm.add_argument("--memory", required=True, metavar="BANK", help="bank folder")
    rm.add_argument("--task", required=True, metavar="NAME", help="task to delete")

    mg = _add(sub, "merge", "copy the tasks of other banks (same source) into this one",
              "example:\n  ganmemory merge --memory bank/ other_bank/ third_bank/")
    mg.add_argument("--memory", required=True, metavar="BANK", help="bank that receives the tasks")
    mg.add_argument("others", nargs="+", metavar="OTHER_BANK", help="banks whose tasks are copied")

    from ..demo import LEARN_MINUTES
    dm = _add(sub, "demo", "learn mnist, fashion-mnist, emoji from the shipped source; show nothing is forgotten",
              "Without --iters, each task learns for a third of --minutes: short timed runs turn that into\n"
              "an iteration count, which the demo prints (--iters with it learns as many on any machine).\n\n"
              "example:\n  ganmemory demo                       # under 15 minutes on 2 CPU cores\n"
              "  ganmemory demo --iters 100 --out /tmp/demo")
    dm.add_argument("--out", default="ganmemory-demo", metavar="DIR", help="output folder (an earlier demo's is replaced)")
    dm.add_argument("--iters", type=_positive, help="iterations per task (default: what --minutes buys here)")
    dm.add_argument("--minutes", type=_positive_float, default=LEARN_MINUTES,
                    help="minutes of learning shared by the three tasks when --iters is not given")
    dm.add_argument("--source", metavar="FILE", help="source file (default: the shipped source)")
    dm.add_argument("--seed", type=_seed, default=0, help="training and sampling seed")
    dm.add_argument("--eval-n", type=_nonnegative, default=1000, metavar="N",
                    help="images per FD-EL0 score of each task before and after learning (0: no scores)")

    from ..lifelong.config import LifelongConfig
    from ..lifelong.strategies import STRATEGIES
    from ..lifelong.tasks import BENCHMARKS
    lf = _add(sub, "lifelong", "class-incremental classification, task after task, with a replay strategy",
              "examples:\n  ganmemory lifelong --benchmark split-mnist --strategy gan-memory --out runs/ll-gm\n"
              "  ganmemory lifelong --benchmark split-mnist --strategy ewc --ewc-lambda 1e4 --out runs/ll-ewc\n"
              "  ganmemory lifelong --tasks 'fashion-mnist:0,1;fashion-mnist:2,3' --strategy joint --out runs/j\n"
              "  ganmemory lifelong --tasks split:fashion-mnist:5 --strategy mergan --gan-iters 1000 --out runs/m\n"
              "  ganmemory lifelong --benchmark split-mnist --strategy gan-memory --out runs/ll-gm --resume   # continue\n"
              "  ganmemory lifelong --benchmark split-mnist --strategy gan-memory --replay-keep 0.5 --out runs/ll-j"
              "   # judged replay\n"
              "strategies:\n" + "".join(f"  {name:<12}{e.description}\n" for name, e in STRATEGIES.items()) +
              "Writes OUT/results.json, OUT/table.md, OUT/accuracy.png and OUT/classifier.safetensors (the\n"
              "classifier, which --resume continues from) after every task.")
    which = lf.add_mutually_exclusive_group(required=True)
    which.add_argument("--benchmark", choices=tuple(BENCHMARKS),
                       help="5 tasks of 2 classes each (0-1, 2-3, ...)")
    which.add_argument("--tasks", metavar="SPECS", help="';'-separated labelled data specs, or split:NAME:K")
    lf.add_argument("--strategy", required=True, choices=tuple(STRATEGIES), help="continual-learning strategy")
    lf.add_argument("--out", required=True, metavar="DIR", help="output folder")
    lf.add_argument("--device", default="cpu", help="torch device of the classifier and the GANs, e.g. cuda")
    lf.add_argument("--resume", action="store_true",
                    help="continue the unfinished run in OUT after its last finished task (same options)")
    from ..lifelong.config import CLASSIFIERS
    lc = LifelongConfig()
    g = lf.add_argument_group("classifier")
    g.add_argument("--iters", type=_positive, default=lc.iters, help="classifier steps per task")
    g.add_argument("--batch", type=_positive, default=lc.batch_size, help="current-task images per step (replay adds as many per earlier task)")
    g.add_argument("--lr", type=_finite, default=lc.lr, help="Adam learning rate")
    g.add_argument("--classifier", choices=CLASSIFIERS, default=lc.classifier, help="small CNN, or EfficientNet-Lite0 + head")
    g.add_argument("--resolution", type=_positive, default=lc.resolution, help="image side (the source's, for replay)")
    g.add_argument("--seed", type=_seed, default=lc.seed, help="seed of the classifier, batches and replay (and the GANs)")
    _strategy_flags(lf.add_argument_group("strategy options (each for the strategies named)"))

    # sample
    s = _add(sub, "sample", "draw images from a memory task, or from a source",
             "examples:\n  ganmemory sample --memory bank/ --task digits -n 64 --out digits.png\n"
             "  ganmemory sample --memory bank/ --task d01 --class 1 -n 16 --out ones.png   # conditional task\n"
             "  ganmemory sample -n 64 --seed 0 --out grid.png            # the shipped source\n"
             "  ganmemory sample --source runs/src/source.safetensors -n 16 --out-dir imgs/")
    s.add_argument("--memory", metavar="BANK", help="bank folder (with --task)")
    s.add_argument("--task", metavar="NAME", help="task to sample (with --memory)")
    s.add_argument("--source", metavar="FILE", help="source file (default: the shipped source)")
    s.add_argument("--class", dest="classes", action="append", metavar="C",
                   help="class of a conditional task (repeatable; -n images each)")
    s.add_argument("-n", type=_count(MAX_DRAW), default=64, help=f"number of images (per --class; at most {MAX_DRAW:,})")
    s.add_argument("--seed", type=_seed, default=0, help="seed of the latent draws")
    s.add_argument("--out", metavar="PNG", help="write one grid PNG")
    s.add_argument("--out-dir", metavar="DIR", help="write one PNG per image")
    s.add_argument("--scale", type=_count(16), default=2, help="enlarge the grid by this factor (at most 16)")
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
    from ..nets import NetConfig
    c = NetConfig()
    g = p.add_argument_group("network")
    g.add_argument("--resolution", type=_positive, default=c.resolution, help="image side, a power of two >= 16")
    g.add_argument("--nf", type=_positive, default=c.nf, help="width multiplier (GP-GAN CelebA-HQ: 64)")
    g.add_argument("--z-dim", type=_positive, default=c.z_dim, help="latent size")
    g.add_argument("--output", choices=("linear", "tanh"), default=c.output,
                   help="generator output; tanh collapses on white-background data")


def _add_train_args(p: argparse.ArgumentParser, iters: int | None = None, preset: str = "tuned",
                    layout: bool = False) -> None:
    """Training options. Those a preset sets default to None here and are filled from --preset."""
    from ..train import TrainConfig
    from ..train.config import PRESETS
    c = TrainConfig.preset(preset)
    g = p.add_argument_group("training")
    g.add_argument("--preset", choices=tuple(PRESETS), default=preset,
                   help="recipe the options below default to: tuned (this project's, for short CPU runs) or "
                        "paper (GP-GAN's, as the GAN Memory authors trained)")
    g.add_argument("--iters", type=_positive, default=iters or c.iters,
                   help="generator steps in all (not just this run)")
    g.add_argument("--batch", type=_positive, help=f"batch size (default: from the preset; {preset}: {c.batch_size})")
    g.add_argument("--lr", type=_finite, help=f"Adam learning rate of G and D (default: from the preset; "
                                              f"{preset}: {c.lr_g:g})")
    g.add_argument("--lr-decay", type=_finite, help=f"over the last FRACTION of --iters both learning rates fall "
                                                    f"linearly towards 0; 0: constant (default: from the preset; "
                                                    f"{preset}: {c.lr_decay:g})", metavar="FRACTION")
    cond = TrainConfig.preset(preset, conditional=True)

    def default(field: str) -> str:
        """The preset's value of field, and a --conditional task's where that differs."""
        mine, theirs = getattr(c, field), getattr(cond, field)
        return f"{preset}: {mine:g}" + (f", {theirs:g} for a --conditional task" if theirs != mine else "")

    g.add_argument("--r1", type=_finite, help=f"R1 weight, mean squared gradient norm, no 1/2 (default: from the "
                                              f"preset; {default('r1_gamma')})")
    g.add_argument("--r1-every", type=_positive, help=f"lazy R1: every N D steps, weight x N (default: from the "
                                                      f"preset; {default('r1_every')})")
    g.add_argument("--mode-seeking", type=_finite, metavar="WEIGHT",
                   help=f"weight of MSGAN's mode-seeking term in G's loss, against a class that collapses to one "
                        f"image; 0: none (default: from the preset; {default('mode_seeking')})")
    g.add_argument("--ema-beta", type=_finite, help=f"generator EMA decay once ramped up (default: from the preset; "
                                                    f"{preset}: {c.ema_beta:g})")
    g.add_argument("--ema-rampup", type=_finite, help=f"EMA half-life at step t: min(that of --ema-beta, "
                                                      f"RAMPUP * t); 0: none (default: from the preset; "
                                                      f"{preset}: {c.ema_rampup:g})")
    g.add_argument("--seed", type=_seed, default=c.seed, help="seed of the weights, batch order and noise")
    from ..train.precision import PRECISIONS
    g.add_argument("--precision", choices=PRECISIONS, default=c.precision,
                   help="auto: bf16 where the processor computes it natively (AVX-512 BF16, AMX, or a "
                        "recent GPU) and, on a CPU, a short probe finds it no slower than fp32, else fp32; "
                        "bf16: that, or fp32 with a note where bf16 would be emulated; fp32: always. What ran is "
                        "stored with the result; a resumed run keeps its precision (default: %(default)s)")
    g.add_argument("--log-every", type=_positive, default=c.log_every, help="JSON-lines log record every N steps")
    g.add_argument("--sample-every", type=_nonnegative, default=c.sample_every, help="sample grid every N steps (0: never)")
    g.add_argument("--ckpt-every", type=_nonnegative, default=c.ckpt_every, help="checkpoint every N steps (0: at the end)")
    if layout:
        from dataclasses import fields
        from ..nets import TaskLayout
        parts = [f.name.replace("_", "-") for f in fields(TaskLayout)]  # its fields, as the CLI spells them
        g.add_argument("--own", action="append", choices=parts, metavar="PART",
                       help=f"the task also owns PART (repeatable): {', '.join(parts)} (default: the paper's "
                            "parameters only)")


def _net_cfg(a: argparse.Namespace, **extra):
    from ..nets import NetConfig
    return NetConfig(resolution=a.resolution, nf=a.nf, z_dim=a.z_dim, output=a.output, **extra)


def _train_cfg(a: argparse.Namespace, **extra):
    from ..train import TrainConfig
    given = {"batch_size": a.batch, "lr_g": a.lr, "lr_d": a.lr, "lr_decay": a.lr_decay, "r1_gamma": a.r1,
             "r1_every": a.r1_every, "ema_beta": a.ema_beta, "ema_rampup": a.ema_rampup,
             "mode_seeking": a.mode_seeking}
    options = {k: v for k, v in given.items() if v is not None}
    if getattr(a, "own", None):
        from ..nets import TaskLayout
        options["layout"] = TaskLayout(**{part.replace("-", "_"): True for part in a.own})
    return TrainConfig.preset(a.preset, iters=a.iters, seed=a.seed, precision=a.precision, log_every=a.log_every,
                              sample_every=a.sample_every, ckpt_every=a.ckpt_every, **options, **extra)


def _strategy_fields() -> dict[str, tuple[Any, list[str]]]:
    """Every strategy's own option fields (``lifelong.strategies``: ``config_fields`` and
    ``Options``), in registry order: field name -> (its dataclass field, the strategies it is for)."""
    from dataclasses import fields
    from ..lifelong.config import LifelongConfig
    from ..lifelong.strategies import STRATEGIES, get_strategy
    config = {f.name: f for f in fields(LifelongConfig)}
    out: dict[str, tuple[Any, list[str]]] = {}
    for name in STRATEGIES:
        cls = get_strategy(name)
        for f in [config[k] for k in cls.config_fields] + list(fields(cls.Options)):
            out.setdefault(f.name, (f, []))[1].append(name)
    return out


def _strategy_flags(group: argparse._ArgumentGroup) -> None:
    """One flag per strategy option field, its help from the field's metadata. The default is
    None, so that ``cmd_lifelong`` can tell a flag given for another strategy."""
    from ..configs import option_name
    for name, (f, owners) in _strategy_fields().items():
        kind = type(f.default)
        parse = {int: _positive, float: _finite}.get(kind, str)
        default = "" if f.default is None else f" (default {f.default})"
        group.add_argument(option_name(name), dest=name, type=parse, metavar=f.metadata.get("metavar", "N"),
                           help=f"{', '.join(owners)}: {f.metadata.get('help', '')}{default}")

