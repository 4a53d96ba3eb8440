"""FD-EL0 of a source against its training data, next to the real-vs-real floor.

    python benchmarks/source_quality.py                 # shipped source vs openclipart, n = 1000

FD-EL0 is a Fréchet distance on EfficientNet-Lite0 features: FID-like, not FID.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from ganmemory.data import load_data
from ganmemory.evaluate import Scorer
from ganmemory.metrics import extract_features, frechet_distance, statistics
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
    data = load_data(a.data, src.cfg.resolution)
    order = np.random.default_rng(7).permutation(len(data))
    fa = extract_features(data.images[order[:a.n]], scorer.extractor)
    fb = extract_features(data.images[order[a.n:2 * a.n]], scorer.extractor)
    floor = frechet_distance(*statistics(fa), *statistics(fb))
    print(json.dumps({"source_vs_data_fd_el0": round(res["value"], 2), "floor_real_vs_real_fd_el0": round(floor, 2),
                      "n": a.n, "data": a.data, "feature_network": res["feature_network"]}))


if __name__ == "__main__":
    main()
