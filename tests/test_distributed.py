"""Two CPU processes with gloo, launched the way users launch them: torchrun."""

import os
import subprocess
import sys

import torch

from ganmemory.memory import MemoryBank
from ganmemory.train import TrainConfig


def test_two_process_learn_writes_the_same_task(tmp_path, tiny_source, image_folder):
    one = MemoryBank.create(tmp_path / "one", tiny_source)
    # fp32: the comparison below allows for another order of float sums, not for bf16 rounding
    one.learn("b", image_folder["b"], TrainConfig(iters=3, batch_size=4, sample_every=0, ckpt_every=0, precision="fp32"),
              progress=False, log=lambda _m: None)

    two = MemoryBank.create(tmp_path / "two", tiny_source)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "ganmemory", "learn", "--memory", str(two.root), "--task", "b", "--data", image_folder["b"],
         "--iters", "3", "--batch", "4", "--sample-every", "0", "--ckpt-every", "0", "--precision", "fp32"],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert two.tasks() == ["b"]  # one task file, written once
    a, b = one.load_task("b")[0], two.load_task("b")[0]
    assert a.keys() == b.keys()
    for k in a:
        if k.startswith(("G.", "G_train.", "D.")):
            # same global batch and draws; only the order of float sums differs
            assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k
    assert b_meta(two)["processes"] == 2


def b_meta(bank):
    return bank.task_meta("b")
