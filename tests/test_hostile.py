"""Hostile input, case by case, through the command line: every case ends in one clear error
(exit status 2, one line naming the fault, no traceback) or, where the input is a damaged task
that ``list`` can step past, in that task marked and the others listed. After every case every
task stored before it still samples bit for bit as it did, and its file is unchanged.

The bank is learned once (three tiny tasks: plain, class-conditional, compressed) and copied
for each case. ``CASES`` at the end counts the cases; the README quotes it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganmemory.cli import main
from ganmemory.locks import BASES_LOCK, TaskLock
from ganmemory.memory import MemoryBank
from ganmemory.nets import Discriminator, Generator, NetConfig
from ganmemory.source import Source
from ganmemory.store import META_KEY, load_artifact, save_artifact, tensors_hash
from ganmemory.train import TrainConfig

TASKS = ("a", "cond", "small")
FAST = dict(iters=2, batch_size=4, sample_every=0, ckpt_every=0, log_every=1)


def _images(folder: Path, n: int, seed: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A bank with a plain task 'a', a two-class task 'cond' and a compressed task 'small';
    the samples every case must leave as they are; and the data folders."""
    root = tmp_path_factory.mktemp("hostile")
    cfg = NetConfig(resolution=16, nf=4, z_dim=8)
    torch.manual_seed(123)
    Source(cfg, Generator(cfg), Discriminator(cfg)).save(root / "source.safetensors")
    _images(root / "flat", 12, 1)
    _images(root / "classes" / "x", 8, 2)
    _images(root / "classes" / "y", 8, 3)
    bank = MemoryBank.create(root / "bank", root / "source.safetensors")
    bank.learn("a", str(root / "flat"), TrainConfig(**FAST), progress=False, log=lambda _: None)
    bank.learn("cond", str(root / "classes"), TrainConfig(**FAST, conditional=True), progress=False,
               log=lambda _: None)
    bank.learn("small", str(root / "flat"), TrainConfig(**FAST, seed=5), progress=False, log=lambda _: None)
    bank.compress(["small"], 0.9, torch.float16)
    samples = {t: bank.sample(t, 4, seed=1) for t in TASKS}
    files = {t: (bank.root / "tasks" / f"{t}.safetensors").read_bytes() for t in TASKS}
    return {"root": root, "bank": bank.root, "samples": samples, "files": files}


@pytest.fixture
def env(pristine, tmp_path, monkeypatch):
    """A fresh copy of the pristine bank in tmp_path (the working directory), and helpers."""
    shutil.copytree(pristine["bank"], tmp_path / "bank")
    monkeypatch.chdir(tmp_path)
    return {"bank": tmp_path / "bank", "tasks": tmp_path / "bank" / "tasks", "data": pristine["root"],
            "tmp": tmp_path, "pristine": pristine}


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI in this process: an uncaught exception (a traceback) fails the test."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse's refusals
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def one_error(capsys, needle: str, *args: str) -> str:
    code, out, err = cli(capsys, *args)
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2, (code, out, err)
    assert "Traceback" not in err
    assert len(lines) == 1 and "error" in lines[0] and needle in lines[0], err
    return lines[0]


def intact(env) -> None:
    """Every pristine task samples bit for bit as before, and its file is unchanged."""
    bank = MemoryBank(env["bank"])
    for t in TASKS:
        assert (env["tasks"] / f"{t}.safetensors").read_bytes() == env["pristine"]["files"][t], t
        assert torch.equal(bank.sample(t, 4, seed=1), env["pristine"]["samples"][t]), t
    assert bank.source.file_hash == MemoryBank(env["pristine"]["bank"]).source.file_hash


# ------------------------------------------------------------------ task names that are paths

def _outside(env) -> Path:
    """A task-looking pair of files outside the bank, which no command may touch."""
    other = env["tmp"] / "elsewhere"
    other.mkdir()
    shutil.copy(env["tasks"] / "a.safetensors", other / "victim.safetensors")
    shutil.copy(env["tasks"] / "a.json", other / "victim.json")
    return other


NAME_CASES = [
    ["remove", "--memory", "{bank}", "--task", "../source"],
    ["remove", "--memory", "{bank}", "--task", "{outside}/victim"],
    ["remove", "--memory", "{bank}", "--task", ""],
    ["remove", "--memory", "{bank}", "--task", ".."],
    ["compress", "--memory", "{bank}", "--in-place", "--task", "../../elsewhere/victim", "--no-eval"],
    ["compress", "--memory", "{bank}", "--out", "{tmp}/b2", "--task", "{outside}/victim", "--no-eval"],
    ["sample", "--memory", "{bank}", "--task", "../../elsewhere/victim", "--out", "x.png"],
    ["sample", "--memory", "{bank}", "--task", "a/../a", "--out", "x.png"],
    ["interpolate", "--memory", "{bank}", "--from", "../tasks/a", "--to", "a", "--out", "x.png"],
    ["interpolate", "--memory", "{bank}", "--from", "a", "--to", "{outside}/victim", "--out", "x.png"],
    ["evaluate", "--memory", "{bank}", "--task", "../../elsewhere/victim", "--data", "{data}/flat"],
    ["learn", "--memory", "{bank}", "--task", "../escape", "--data", "{data}/flat"],
    ["learn", "--memory", "{bank}", "--task", ".hidden", "--data", "{data}/flat"],
    ["learn", "--memory", "{bank}", "--task", "x" * 65, "--data", "{data}/flat"],
    ["learn", "--memory", "{bank}", "--task", "a b", "--data", "{data}/flat"],
    ["learn", "--memory", "{bank}", "--task", "{outside}/new", "--data", "{data}/flat"],
]


@pytest.mark.parametrize("args", NAME_CASES, ids=lambda a: " ".join(a[:1] + a[3:5])[:40])
def test_a_task_name_is_never_a_path(env, capsys, args):
    outside = _outside(env)
    before = {p: p.read_bytes() for p in outside.iterdir()}
    args = [a.format(bank=env["bank"], outside=outside, data=env["data"], tmp=env["tmp"]) for a in args]
    one_error(capsys, "is not allowed", *args)
    assert {p: p.read_bytes() for p in outside.iterdir()} == before
    assert (env["bank"] / "source.safetensors").exists() and not (env["tmp"] / "escape.safetensors").exists()
    intact(env)


def test_a_task_file_linking_out_of_the_bank_is_refused(env, capsys):
    outside = _outside(env)
    os.symlink(outside / "victim.safetensors", env["tasks"] / "link.safetensors")
    one_error(capsys, "links outside the bank", "sample", "--memory", env["bank"], "--task", "link", "--out", "x.png")
    one_error(capsys, "links outside the bank", "remove", "--memory", env["bank"], "--task", "link")
    assert (outside / "victim.safetensors").exists()
    intact(env)


def test_a_file_whose_name_is_not_a_task_name_is_marked_by_list(env, capsys):
    shutil.copy(env["tasks"] / "a.safetensors", env["tasks"] / "a b.safetensors")
    code, out, err = cli(capsys, "list", "--memory", env["bank"])
    assert code == 1 and "a b" in out and "DAMAGED" in out and "is not allowed" in out, out
    assert all(f"\n{t} " in out for t in TASKS) and "Traceback" not in err
    one_error(capsys, "is not allowed", "merge", "--memory", _fresh_bank(env), env["bank"])
    intact(env)


# ------------------------------------------------------------------ damaged or forged task files

def _rewrite(path: Path, tensors=None, meta=None, rehash=True) -> None:
    """Write a task file with changed tensors or header; ``rehash`` forges a matching hash,
    as a deliberate (not accidental) change would."""
    t, m = load_artifact(path)
    t = tensors(t) if tensors else t
    m = meta(m) if meta else m
    if rehash and isinstance(m, dict) and "tensor_hash" in m:
        m["tensor_hash"] = tensors_hash(t)
    save_artifact(path, t, m) if isinstance(m, dict) else _raw_header(path, t, m)


def _raw_header(path: Path, tensors, header_obj) -> None:
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata={META_KEY: json.dumps(header_obj)})


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    n = int.from_bytes(data[:8], "little")
    index = json.loads(data[8:8 + n])
    start = index["G.resnet_0_0.conv_0.gamma"]["data_offsets"][0]
    data[8 + n + start + 1] ^= 0x40
    path.write_bytes(bytes(data))


def _set(key, value):
    def f(m):
        m[key] = value
        return m
    return f


def _drop(key):
    def f(m):
        m.pop(key)
        return m
    return f


def _tensor(key, fn):
    def f(t):
        t[key] = fn(t[key])
        return t
    return f


GAMMA = "G.resnet_0_0.conv_0.gamma"
TAMPER = {
    "one flipped byte": (lambda p: _flip_byte(p), "do not match the hash"),
    "NaN, hash forged": (lambda p: _rewrite(p, _tensor(GAMMA, lambda x: x.index_fill(0, torch.tensor([0]), float("nan")))),
                         "not finite"),
    "inf in the optimizer state": (lambda p: _rewrite(p, _tensor("opt_g.0.exp_avg", lambda x: x + float("inf"))),
                                   "not finite"),
    "NaN, no hash (version 1)": (lambda p: _rewrite(p, _tensor(GAMMA, lambda x: x * float("nan")),
                                                    lambda m: {**_drop("tensor_hash")(m), "format_version": 1}),
                                 "not finite"),
    "integer tensor": (lambda p: _rewrite(p, _tensor(GAMMA, lambda x: x.to(torch.int32))), "not floating point"),
    "missing tensor": (lambda p: _rewrite(p, lambda t: {k: v for k, v in t.items() if k != GAMMA}), "is missing"),
    "extra generator tensor": (lambda p: _rewrite(p, lambda t: {**t, "G.resnet_0_0.conv_0.extra": torch.zeros(2)}),
                               "is not a parameter of the network"),
    "tensor of no task group": (lambda p: _rewrite(p, lambda t: {**t, "payload.x": torch.zeros(2)}), "that no task has"),
    "wrong generator shape": (lambda p: _rewrite(p, _tensor(GAMMA, lambda x: torch.zeros(x.shape[0] + 1, x.shape[1]))),
                              "has shape"),
    "wrong discriminator shape": (lambda p: _rewrite(p, _tensor("D.fc.weight", lambda x: torch.zeros(5, 5))),
                                  "discriminator tensor 'fc.weight' has shape"),
    "header is a list": (lambda p: _rewrite(p, meta=lambda m: [m]), "not an object"),
    "absurd n_classes": (lambda p: _rewrite(p, meta=_set("n_classes", 10**12)), "'n_classes' must be"),
    "n_classes a string": (lambda p: _rewrite(p, meta=_set("n_classes", "2")), "'n_classes' must be"),
    "n_classes without names": (lambda p: _rewrite(p, meta=_set("n_classes", 3)), "says 3 classes but names"),
    "class name not a string": (lambda p: _rewrite(p, meta=_set("classes", [1, 2])), "'classes' must be"),
    "another resolution": (lambda p: _rewrite(p, meta=_set("resolution", 64)), "is for 64 px"),
    "unknown format version": (lambda p: _rewrite(p, meta=_set("format_version", 99)), "'format_version' must be"),
    "version 2 without a hash": (lambda p: _rewrite(p, meta=_drop("tensor_hash")), "has no 'tensor_hash'"),
    "malformed hash": (lambda p: _rewrite(p, meta=_set("tensor_hash", "zz"), rehash=False), "'tensor_hash' must be"),
    "no format": (lambda p: _rewrite(p, meta=_drop("format")), "has no 'format'"),
    "a source's format": (lambda p: _rewrite(p, meta=_set("format", "ganmemory-source")), "'format' must be"),
    "data spec a list": (lambda p: _rewrite(p, meta=_set("data", ["x"])), "'data' must be"),
    "another source": (lambda p: _rewrite(p, meta=_set("source_hash", "0" * 16)), "was learned from source"),
    "deeply nested header": (lambda p: _raw_header_text(p, '{"x": ' + "[" * 100_000 + "]" * 100_000 + "}"),
                             "nested too deeply"),
    "huge header": (lambda p: _rewrite(p, meta=_set("metrics", [{"x": "y" * (17 << 20)}])), "more than"),
    "header not JSON": (lambda p: _raw_header_text(p, "{not json"), "corrupted ganmemory header"),
    "absurd header length": (lambda p: p.write_bytes((2**63).to_bytes(8, "little") + p.read_bytes()[8:]),
                             "corrupted"),
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "corrupted"),
    "empty file": (lambda p: p.write_bytes(b""), "corrupted"),
    "a directory": (lambda p: (p.unlink(), p.mkdir()), "corrupted"),
    "unknown compression mode": (lambda p: _rewrite(p, meta=_set("compressed", {"mode": "zip", "energy": 0.9})),
                                 "'compressed' must be"),
    "unknown factorised part": (lambda p: _rewrite(p, meta=_set("compressed", {"mode": "per-task", "of": "half",
                                                                                "energy": 0.9})),
                                "'compressed' must be"),
}


def _raw_header_text(path: Path, text: str) -> None:
    from safetensors.torch import save_file
    t, _ = load_artifact(path)
    save_file({k: v.contiguous() for k, v in t.items()}, str(path), metadata={META_KEY: text})


@pytest.mark.parametrize("case", list(TAMPER))
def test_a_damaged_task_is_named_and_the_others_still_work(env, capsys, case):
    victim = env["tasks"] / "v.safetensors"
    shutil.copy(env["tasks"] / "a.safetensors", victim)
    tamper, needle = TAMPER[case]
    tamper(victim)
    line = one_error(capsys, needle, "sample", "--memory", env["bank"], "--task", "v", "--out", "v.png")
    assert "'v'" in line or "v.safetensors" in line
    assert not Path("v.png").exists()
    code, out, err = cli(capsys, "list", "--memory", env["bank"])
    assert code == 1 and "Traceback" not in err, err
    row = next(ln for ln in out.splitlines() if ln.startswith("v "))
    assert "DAMAGED" in row and needle in row, row
    assert all(any(ln.startswith(f"{t} ") and "DAMAGED" not in ln for ln in out.splitlines()) for t in TASKS), out
    one_error(capsys, needle, "interpolate", "--memory", env["bank"], "--from", "a", "--to", "v", "--out", "s.png")
    one_error(capsys, needle, "compress", "--memory", env["bank"], "--in-place", "--task", "v", "--no-eval")
    one_error(capsys, needle, "merge", "--memory", _fresh_bank(env), env["bank"])
    assert list((env["tmp"] / "fresh" / "tasks").iterdir()) == []
    intact(env)


def _fresh_bank(env) -> Path:
    fresh = env["tmp"] / "fresh"
    if not fresh.exists():
        MemoryBank.create(fresh, env["bank"] / "source.safetensors")
    return fresh


def test_mismatched_compressed_factors_are_named(env, capsys):
    victim = env["tasks"] / "w.safetensors"
    shutil.copy(env["tasks"] / "small.safetensors", victim)
    key = next(k for k in load_artifact(victim)[0] if k.endswith(".lowrank_a"))
    _rewrite(victim, _tensor(key, lambda x: torch.zeros(x.shape[0], x.shape[1] + 3)))
    one_error(capsys, "compressed tensors do not fit together", "sample", "--memory", env["bank"], "--task", "w",
              "--out", "w.png")
    _rewrite(victim, lambda t: {**t, "D.fc.weight": torch.zeros(1, 1)})
    one_error(capsys, "a compressed task holds only generator tensors", "sample", "--memory", env["bank"],
              "--task", "w", "--out", "w.png")
    intact(env)


def test_a_v1_task_file_without_a_hash_still_loads(env, capsys):
    """Task files written before the hash existed (format version 1) load as before."""
    _rewrite(env["tasks"] / "a.safetensors", meta=lambda m: {**_drop("tensor_hash")(m), "format_version": 1})
    bank = MemoryBank(env["bank"])
    assert torch.equal(bank.sample("a", 4, seed=1), env["pristine"]["samples"]["a"])
    code, out, _ = cli(capsys, "list", "--memory", env["bank"])
    assert code == 0 and "DAMAGED" not in out


# ------------------------------------------------------------------ the bank itself

BANK_JSON = {
    "a list": ("[1, 2]", "is not a ganmemory bank description"),
    "not JSON": ("{nope", "is corrupted"),
    "binary": (b"\xff\xfe\x00garbage", "is corrupted"),
    "no source hash": (json.dumps({"format": "ganmemory-bank"}), "names no source hash"),
    "a numeric source hash": (json.dumps({"format": "ganmemory-bank", "source_hash": 5}), "names no source hash"),
    "deeply nested": ("[" * 100_000 + "]" * 100_000, "is corrupted"),
}


@pytest.mark.parametrize("case", list(BANK_JSON))
def test_a_damaged_bank_json_is_one_error(env, capsys, case):
    text, needle = BANK_JSON[case]
    path = env["bank"] / "bank.json"
    good = path.read_bytes()
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    for args in (["list"], ["sample", "--task", "a", "--out", "x.png"], ["remove", "--task", "a"]):
        one_error(capsys, needle, args[0], "--memory", env["bank"], *args[1:])
    path.write_bytes(good)
    intact(env)


def test_a_source_file_with_an_absurd_config_is_refused_before_allocating(env, capsys):
    src = env["tmp"] / "absurd.safetensors"
    tensors, meta = load_artifact(env["bank"] / "source.safetensors")
    meta["net"]["nf"] = 1024  # a forged header over small tensors: networks 65,536 times larger
    save_artifact(src, tensors, meta)
    one_error(capsys, "does not match its own network config", "init", "--source", src, "--out", "b3")
    meta["net"] = [1, 2]
    save_artifact(src, tensors, meta)
    one_error(capsys, "has no network config", "init", "--source", src, "--out", "b3")
    one_error(capsys, "not a 'ganmemory-source'", "init", "--source", env["tasks"] / "a.safetensors", "--out", "b3")
    one_error(capsys, "is not a readable safetensors file", "init", "--source", env["tasks"], "--out", "b3")
    assert not (env["tmp"] / "b3").exists()
    intact(env)


# ------------------------------------------------------------------ numbers and places

OPTION_CASES = [
    (["learn", "--task", "n", "--r1", "nan"], "not a finite number"),
    (["learn", "--task", "n", "--lr", "inf"], "not a finite number"),
    (["learn", "--task", "n", "--lr", "0"], "option --lr must be > 0"),
    (["learn", "--task", "n", "--ema-beta", "nan"], "not a finite number"),
    (["learn", "--task", "n", "--ema-beta", "1"], "option --ema-beta must be in [0, 1)"),
    (["learn", "--task", "n", "--r1", "-1"], "option --r1 must be >= 0"),
    (["learn", "--task", "n", "--mode-seeking", "-1"], "option --mode-seeking must be >= 0"),
    (["learn", "--task", "n", "--mode-seeking", "nan"], "not a finite number"),
    (["learn", "--task", "n", "--seed", str(2**70)], "argument --seed"),
    (["learn", "--task", "n", "--seed", "-1"], "argument --seed"),
    (["learn", "--task", "n", "--batch", "0"], "argument --batch"),
    (["learn", "--task", "n", "--batch", str(10**9)], "option --batch must be at most"),
    (["learn", "--task", "n", "--iters", "0"], "argument --iters"),
    (["learn", "--task", "n", "--eval-every", "-1"], "argument --eval-every"),
    (["learn", "--task", "n", "--sample-every", "-2"], "argument --sample-every"),
    (["learn", "--task", "n", "--lowrank", "--lowrank-energy", "nan"], "not a finite number"),
    (["learn", "--task", "n", "--lowrank", "--lowrank-energy", "0"], "--lowrank-energy must be in (0, 1]"),
    (["sample", "--task", "a", "-n", "0", "--out", "x.png"], "argument -n"),
    (["sample", "--task", "a", "-n", str(10**9), "--out", "x.png"], "argument -n"),
    (["sample", "--task", "a", "--scale", "1000", "--out", "x.png"], "argument --scale"),
    (["sample", "--task", "a", "--seed", str(2**64), "--out", "x.png"], "argument --seed"),
    (["sample", "--task", "cond", "--class", "zebra", "--out", "x.png"], "has no class 'zebra'"),
    (["sample", "--task", "a", "--class", "x", "--out", "x.png"], "is not class-conditional"),
    (["interpolate", "--from", "a", "--to", "small", "--steps", "1", "--out", "x.png"], "--steps must be >= 2"),
    (["interpolate", "--from", "a", "--to", "small", "--steps", str(10**6), "--out", "x.png"], "argument --steps"),
    (["interpolate", "--from", "a", "--to", "cond", "--out", "x.png"], "have different parameters"),
    (["compress", "--in-place", "--energy", "nan", "--no-eval"], "argument --energy"),
    (["compress", "--in-place", "--energy", "1.5", "--no-eval"], "argument --energy"),
    (["compress", "--in-place", "--task", "small", "--no-eval"], "is already compressed"),
    (["compress", "--in-place", "--budget", "0", "--no-eval"], "argument --budget"),
    (["compress", "--in-place", "--task", "a", "--budget", "0.001", "--no-eval"], "is below that"),
    (["compress", "--in-place", "--energy", "0.5", "--budget", "5", "--no-eval"], "not allowed with argument"),
    (["evaluate", "--task", "a", "--data", "{data}/flat", "--n", "0"], "argument --n"),
    (["evaluate", "--task", "cond", "--data", "{data}/flat", "--metric", "cas", "--per-class", "0"],
     "argument --per-class"),
    (["evaluate", "--task", "a", "--data", "{data}/flat", "--metric", "cas"], "is not class-conditional"),
    (["evaluate", "--task", "cond", "--data", "{data}/flat", "--metric", "cas", "--n", "100"],
     "--n does not apply to --metric cas"),
    (["evaluate", "--task", "a", "--data", "{data}/flat", "--ceiling", "mnist"],
     "--ceiling does not apply to --metric fd-el0"),
    (["evaluate", "--task", "a", "--data", "{data}/flat", "--inception-weights", "w.pth"],
     "--inception-weights does not apply to --metric fd-el0"),
]


@pytest.mark.parametrize("args,needle", OPTION_CASES, ids=lambda x: " ".join(x)[:50] if isinstance(x, list) else "")
def test_a_bad_number_is_refused_before_anything_runs(env, capsys, args, needle):
    args = [a.format(data=env["data"]) for a in args]
    one_error(capsys, needle, args[0], "--memory", env["bank"], *(args[1:] + (
        ["--data", str(env["data"] / "flat")] if args[0] == "learn" else [])))
    assert not (env["tasks"] / "n.safetensors").exists() and not (env["bank"] / "work" / "n").exists()
    assert not Path("x.png").exists()
    intact(env)


BANKLESS_CASES = [
    (["lifelong", "--benchmark", "split-mnist", "--strategy", "gan-memory", "--replay-current", "nan", "--out", "o"],
     "argument --replay-current"),
    (["lifelong", "--benchmark", "split-mnist", "--strategy", "gan-memory", "--gan-lr", "inf", "--out", "o"],
     "argument --gan-lr"),
    (["lifelong", "--benchmark", "split-mnist", "--strategy", "ewc", "--ewc-lambda", "-1", "--out", "o"],
     "option --ewc-lambda must be >= 0"),
    (["lifelong", "--benchmark", "split-mnist", "--strategy", "joint", "--resolution", str(10**6), "--out", "o"],
     "option --resolution must be in [8, 1024]"),
    (["lifelong", "--benchmark", "split-mnist", "--strategy", "joint", "--replay-pool", str(10**9), "--out", "o"],
     "option --replay-pool must be at most"),
    (["lifelong", "--benchmark", "split-mnist", "--strategy", "joint", "--seed", str(2**63), "--out", "o"],
     "argument --seed"),
    (["pretrain", "--data", "{data}/flat", "--out", "o", "--nf", "100000"], "network option nf must be in"),
    (["pretrain", "--data", "{data}/flat", "--out", "o", "--resolution", "48"], "resolution 48 is not supported"),
    (["pretrain", "--data", "{data}/flat", "--out", "o", "--resolution", "4096"], "resolution 4096 is not supported"),
    (["pretrain", "--data", "{data}/flat", "--out", "o", "--r1", "nan"], "argument --r1"),
    (["demo", "--iters", "0"], "argument --iters"),
    (["demo", "--minutes", "0"], "argument --minutes: 0 must be above 0"),
    (["demo", "--minutes", "inf"], "argument --minutes: 'inf' is not a finite number"),
    (["sample", "-n", "4", "--out", "/proc/forbidden/x.png"], "cannot use '/proc/forbidden"),
    (["sample", "-n", "4", "--out", "{tmp}"], "cannot use"),
    (["sample", "-n", "4", "--out-dir", "/proc/forbidden"], "cannot use '/proc/forbidden"),
    (["init", "--out", "/proc/forbidden/bank"], "cannot use '/proc/forbidden"),
    (["interpolate", "--memory", "{bank}", "--from", "a", "--to", "small", "--out", "/proc/x/s.png"],
     "cannot use '/proc/x"),
    (["learn", "--memory", "{bank}", "--task", "e", "--data", "{data}/classes", "--conditional"], None),
    (["learn", "--memory", "{bank}", "--task", "e", "--data", "{tmp}/nothing-here"], "does not exist"),
    (["merge", "--memory", "{bank}", "{bank}"], "clashes with a task of the same name"),
    (["remove", "--memory", "{bank}", "--task", "nope"], "unknown task 'nope'"),
]


@pytest.mark.parametrize("args,needle", BANKLESS_CASES, ids=lambda x: " ".join(x)[:50] if isinstance(x, list) else "")
def test_bad_options_and_places_are_one_error(env, capsys, args, needle):
    if needle is None:  # an empty class folder beside full ones would drop that class unseen
        (env["data"] / "classes" / "z").mkdir(exist_ok=True)
        needle = "class folder 'z' holds no images"
    try:
        args = [a.format(data=env["data"], bank=env["bank"], tmp=env["tmp"]) for a in args]
        one_error(capsys, needle, *args)
    finally:
        if (env["data"] / "classes" / "z").exists():
            (env["data"] / "classes" / "z").rmdir()
    assert not (env["tmp"] / "o").exists()
    intact(env)


# ------------------------------------------------------------------ one writer per task

@pytest.mark.parametrize("args", [
    ["learn", "--task", "c", "--data", "{data}/flat", "--iters", "2", "--batch", "4"],
    ["remove", "--task", "a"],
    ["compress", "--in-place", "--task", "a", "--no-eval"],
])
def test_a_task_held_by_another_writer_is_refused(env, capsys, args):
    name = args[args.index("--task") + 1]
    lock = TaskLock(env["bank"], name)
    assert lock.try_acquire("learn (a test holding it)")
    try:
        args = [a.format(data=env["data"]) for a in args]
        line = one_error(capsys, f"task '{name}' of bank", args[0], "--memory", env["bank"], *args[1:])
        assert f"process {os.getpid()}, learn (a test holding it)" in line
    finally:
        lock.release()
    assert not (env["tasks"] / "c.safetensors").exists()
    intact(env)


def test_the_shared_bases_have_one_writer(env, capsys):
    lock = TaskLock(env["bank"], BASES_LOCK)
    assert lock.try_acquire("a test")
    try:
        one_error(capsys, "shared bases of bank", "compress", "--memory", env["bank"], "--in-place", "--task", "a",
                  "--shared", "--no-eval")
    finally:
        lock.release()
    intact(env)


def test_other_names_learn_while_one_is_held(env, capsys):
    lock = TaskLock(env["bank"], "c")
    assert lock.try_acquire("a test")
    try:
        code, out, err = cli(capsys, "learn", "--memory", env["bank"], "--task", "d", "--data", env["data"] / "flat",
                             "--iters", "2", "--batch", "4", "--sample-every", "0")
        assert code == 0, err
    finally:
        lock.release()
    assert "d" in MemoryBank(env["bank"]).tasks()
    intact(env)


WRITER = r"""
import sys
from ganmemory.cli import main
sys.exit(main(["learn", "--memory", sys.argv[1], "--task", "race", "--data", sys.argv[2], "--iters", "100000",
               "--batch", "4", "--sample-every", "0", "--ckpt-every", "0"]))
"""


def test_two_processes_learning_one_name(env, capsys):
    """A real second process: refused while the first learns; after the first is killed
    (SIGKILL, no clean-up) its lock is gone and the name can be learned again."""
    first = subprocess.Popen([sys.executable, "-c", WRITER, str(env["bank"]), str(env["data"] / "flat")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lock_file = env["bank"] / "locks" / "race.lock"
        deadline = time.time() + 60
        while not (lock_file.exists() and lock_file.read_text().startswith(str(first.pid))):
            assert time.time() < deadline and first.poll() is None, "the first writer did not start"
            time.sleep(0.1)
        line = one_error(capsys, "task 'race' of bank", "learn", "--memory", env["bank"], "--task", "race",
                         "--data", env["data"] / "flat", "--iters", "2", "--batch", "4")
        assert f"process {first.pid}" in line and "learn race" in line
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    code, _, err = cli(capsys, "learn", "--memory", env["bank"], "--task", "race", "--data", env["data"] / "flat",
                       "--iters", "2", "--batch", "4", "--sample-every", "0", "--overwrite")
    assert code == 0, err
    intact(env)


# ------------------------------------------------------------------ what interrupted writers leave

def test_list_clears_the_leftovers_of_a_cut_save(env, capsys):
    junk = [env["tasks"] / ".a.safetensors.k3j2h1x0.tmp", env["tasks"] / ".gone.json.abcdefgh.tmp"]
    for p in junk:
        p.write_bytes(b"half a file")
    held = env["tasks"] / ".cond.safetensors.zzzzzzzz.tmp"
    held.write_bytes(b"being written")
    lock = TaskLock(env["bank"], "cond")
    assert lock.try_acquire("a test")
    try:
        code, out, err = cli(capsys, "list", "--memory", env["bank"])
    finally:
        lock.release()
    assert code == 0, err
    assert all(not p.exists() for p in junk) and held.exists()
    assert out.count("left by an interrupted save") == 2 and "is under way in another process" in out
    intact(env)


def test_remove_clears_an_unfinished_learn_so_the_name_can_be_learned_again(env, capsys):
    args = ["--memory", env["bank"], "--task", "w", "--data", env["data"] / "flat", "--batch", "4",
            "--sample-every", "0"]
    assert cli(capsys, "learn", *args, "--iters", "4", "--ckpt-every", "2")[0] == 0
    (env["bank"] / "work" / "w").mkdir(parents=True)  # as a kill would leave it
    (env["bank"] / "work" / "w" / "checkpoint.safetensors").write_bytes(b"cut")
    (env["tasks"] / ".w.safetensors.abcdefgh.tmp").write_bytes(b"cut")
    code, out, _ = cli(capsys, "list", "--memory", env["bank"])
    assert "unfinished learn of task 'w'" in out
    code, out, err = cli(capsys, "remove", "--memory", env["bank"], "--task", "w")
    assert code == 0 and "task file" in out and "unfinished learn" in out, err
    assert not (env["bank"] / "work" / "w").exists() and not list(env["tasks"].glob(".w.*"))
    assert cli(capsys, "learn", *args, "--iters", "2")[0] == 0
    (env["bank"] / "work" / "only").mkdir(parents=True)  # an unfinished learn with no task file
    code, out, err = cli(capsys, "remove", "--memory", env["bank"], "--task", "only")
    assert code == 0 and "unfinished learn" in out, err
    intact(env)


def hostile_cases() -> int:
    """The cases of this module: one per test, one per parameter of a parametrized test."""
    tests = [f for name, f in globals().items() if name.startswith("test_") and name != "test_the_readme_counts_the_cases"]
    sizes = [[len(m.args[1]) for m in getattr(f, "pytestmark", []) if m.name == "parametrize"] for f in tests]
    return sum(size[0] if size else 1 for size in sizes)


def test_the_readme_counts_the_cases():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert f"{hostile_cases()} hostile cases" in readme, hostile_cases()
