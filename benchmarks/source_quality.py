"""FD-EL0 of a source against its training data, next to the real-vs-real floor.

    python benchmarks/source_quality.py                 # shipped source vs openclipart, n = 1000

FD-EL0 is a Fréchet distance on EfficientNet-Lite0 features: FID-like, not FID.
"""

from __future__ import annotations

import argparse
import json

from ganmemory.evaluate import Scorer, real_floor
from ganmemory.source import Source


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default=None, help="source file (default: the shipped one)")
    p.add_argument("--data", default="openclipart")
    p.add_argument("--n", type=int, default=1000)
    a = p.parse_args()
    src = Source.load(a.source)
    scorer = Scorer(a.data, src.cfg.resolution, "fd-el0", a.n)
    res = scorer.score(lambda z: src.G(z).clamp(-1, 1), src.cfg.z_dim, seed=0)
    floor = real_floor(a.data, src.cfg.resolution, a.n, scorer.extractor)
    print(json.dumps({"source_vs_data_fd_el0": round(res["value"], 2), "floor_real_vs_real_fd_el0": round(floor, 2),
                      "n": a.n, "data": a.data, "feature_network": res["feature_network"]}))


if __name__ == "__main__":
    main()
