"""What checking a task file costs when sampling: ``sample`` with every check against the same
sampling from a file read without any, side by side and interleaved.

    python benchmarks/verify_speed.py            # 32 px shipped source, 64 images, 41 rounds

Checked: ``MemoryBank.sample`` as the library runs it (the header's schema, the tensors' hash,
finiteness, names and shapes; ``taskfile.py``). Unchecked: the same header read, the tensors
read with ``safetensors.load_file`` and loaded into the same generator, as before the checks
existed. Both draw the same 64 images from one task stored whole (generator, trained generator,
discriminator and optimizer state: about 1 M numbers, 4 MB). Prints the medians, their ratio,
the medians of reading the task alone, checked and unchecked, and the time of the whole
``ganmemory sample`` command for scale.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from ganmemory.memory import MemoryBank
from ganmemory.source import generate, latents
from ganmemory.store import check_complete, read_meta, unprefixed
from ganmemory.train import TrainConfig


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=64, help="images per sample call")
    p.add_argument("--rounds", type=int, default=41)
    p.add_argument("--json", help="also write the results here")
    a = p.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "data"
        folder.mkdir()
        rng = np.random.default_rng(0)
        for i in range(32):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        bank = MemoryBank.create(Path(tmp) / "bank")
        bank.learn("t", str(folder), TrainConfig(iters=4, batch_size=8, sample_every=0, ckpt_every=0),
                   progress=False, log=lambda _: None)
        path = bank.root / "tasks" / "t.safetensors"
        file_bytes = path.stat().st_size
        z = latents(a.n, bank.cfg.z_dim, 0)

        def checked() -> torch.Tensor:
            return bank.sample("t", a.n, seed=0)

        def load_unchecked() -> dict[str, torch.Tensor]:
            check_complete(path)
            meta = read_meta(path)
            assert meta["source_hash"] == bank.source.file_hash
            return load_file(str(path))

        def unchecked() -> torch.Tensor:
            G = bank._modulated_generator(0)
            G.load_task_state(unprefixed("G", load_unchecked()))
            return generate(G, z, None)

        assert torch.equal(checked(), unchecked())
        times: dict[str, list[float]] = {"checked": [], "unchecked": [], "load_checked": [], "load_unchecked": []}
        for _ in range(a.rounds):
            for name, fn in (("checked", checked), ("unchecked", unchecked),
                             ("load_checked", lambda: bank.load_task("t")), ("load_unchecked", load_unchecked)):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        cli = []
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "ganmemory", "sample", "--memory", str(bank.root), "--task", "t",
                            "-n", str(a.n), "--out", str(Path(tmp) / "g.png")], check=True, capture_output=True)
            cli.append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    res = {"cpu": cpu_name(), "torch": torch.__version__, "threads": torch.get_num_threads(), "n": a.n,
           "rounds": a.rounds, "checked_s": med["checked"], "unchecked_s": med["unchecked"],
           "load_checked_s": med["load_checked"], "load_unchecked_s": med["load_unchecked"],
           "ratio": med["checked"] / med["unchecked"], "cli_sample_s": statistics.median(cli),
           "file_bytes": file_bytes, "date": time.strftime("%Y-%m-%d")}
    print(f"{res['cpu']}, torch {res['torch']}, {res['threads']} threads; {a.n} images at 32 px from a "
          f"{file_bytes:,}-byte task file, {a.rounds} interleaved rounds")
    print(f"sample with every check   {1000 * med['checked']:8.1f} ms (median)")
    print(f"sample without checks     {1000 * med['unchecked']:8.1f} ms (median)")
    print(f"ratio                     {res['ratio']:8.3f}  (target: at most 1.05)")
    print(f"reading the task alone: checked {1000 * med['load_checked']:.1f} ms, unchecked "
          f"{1000 * med['load_unchecked']:.1f} ms (medians)")
    print(f"'ganmemory sample' command {res['cli_sample_s']:7.2f} s (median of 3, start-up included)")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
