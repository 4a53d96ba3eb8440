"""Two CPU processes with gloo, launched the way users launch them: torchrun."""

import os
import shutil
import subprocess
import sys

import torch

from ganmemory.memory import MemoryBank
from ganmemory.train import TrainConfig


def _one_and_two_processes(tmp_path, tiny_source, data, cfg, argv):
    """Task "b" learned from ``data`` by one process (``cfg``) and by two under torchrun (``argv``):
    both task files' tensors."""
    one = MemoryBank.create(tmp_path / "one", tiny_source)
    one.learn("b", data, cfg, progress=False, log=lambda _m: None)

    two = MemoryBank.create(tmp_path / "two", tiny_source)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "ganmemory", "learn", "--memory", str(two.root), "--task", "b", "--data", data, *argv],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert two.tasks() == ["b"]  # one task file, written once
    assert b_meta(two)["processes"] == 2
    a, b = one.load_task("b")[0], two.load_task("b")[0]
    assert a.keys() == b.keys()
    return a, b


def _assert_same_task(a, b):
    for k in a:
        if k.startswith(("G.", "G_train.", "D.")):
            # same global batch and draws; only the order of float sums differs
            assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k


def test_two_process_learn_writes_the_same_task(tmp_path, tiny_source, image_folder):
    # fp32: the comparison allows for another order of float sums, not for bf16 rounding
    cfg = TrainConfig(iters=3, batch_size=4, sample_every=0, ckpt_every=0, precision="fp32")
    argv = ["--iters", "3", "--batch", "4", "--sample-every", "0", "--ckpt-every", "0", "--precision", "fp32"]
    _assert_same_task(*_one_and_two_processes(tmp_path, tiny_source, image_folder["b"], cfg, argv))


def test_two_process_conditional_learn_with_mode_seeking_writes_the_same_task(tmp_path, tiny_source, image_folder):
    data = tmp_path / "classes"  # two class folders
    shutil.copytree(image_folder["a"], data / "x")
    shutil.copytree(image_folder["b"], data / "y")
    cfg = TrainConfig.preset("tuned", conditional=True, mode_seeking=1.0, flip=False, iters=3, batch_size=8,
                             sample_every=0, ckpt_every=0, precision="fp32")
    argv = ["--conditional", "--mode-seeking", "1", "--no-flip", "--iters", "3", "--batch", "8",
            "--sample-every", "0", "--ckpt-every", "0", "--precision", "fp32"]
    a, b = _one_and_two_processes(tmp_path, tiny_source, str(data), cfg, argv)
    # each rank holds whole pairs and the term's two means are the global batch's
    _assert_same_task(a, b)


def b_meta(bank):
    return bank.task_meta("b")
