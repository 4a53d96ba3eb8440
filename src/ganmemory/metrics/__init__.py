"""Metrics as pure stages: images -> features -> statistics -> score.

* ``features``: feature networks by name ("el0", "inception"), batched extraction, and cached
  statistics of real data.
* ``frechet``: mean/covariance and the Fréchet distance (FID on InceptionV3 features, "FD-EL0"
  on EfficientNet-Lite0 features).
* ``kid``: unbiased kernel distance with the cubic polynomial kernel.

Every number shown is named after its feature network (the constants ``FD_EL0``, ``KID_EL0``,
``FID``); FD-EL0 and KID-EL0 are not comparable with published FID/KID.
"""

from ..nets.efficientnet_lite0 import EfficientNetLite0, load_efficientnet_lite0
from .features import (EXTRACTORS, FD_EL0, FID, KID_EL0, METRICS, Metric, RealStatistics, build_extractor,
                       extract_features, real_statistics)
from .frechet import frechet_distance, statistics
from .inception import INCEPTION_WEIGHTS_FILE, FIDInceptionV3, load_fid_inception
from .kid import KIDResult, kernel_distance

__all__ = ["EXTRACTORS", "EfficientNetLite0", "FD_EL0", "FID", "FIDInceptionV3", "INCEPTION_WEIGHTS_FILE",
           "KIDResult", "KID_EL0", "METRICS", "Metric", "RealStatistics", "build_extractor",
           "extract_features", "frechet_distance", "kernel_distance", "load_efficientnet_lite0",
           "load_fid_inception", "real_statistics", "statistics"]
