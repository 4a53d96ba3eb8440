import numpy as np
import pytest
import torch
from PIL import Image

from ganmemory.data import load_data, parse_spec, preprocess
from ganmemory.errors import GanMemoryError


@pytest.mark.parametrize("spec,n_classes,min_n", [
    ("mnist", 10, 60_000),
    ("mnist:0,1@test", 2, 2_000),
    ("fashion-mnist@test", 10, 10_000),
    ("fashion-mnist:bag,boot", 2, 12_000),
    ("emoji:Animals,Food", 2, 250),
    ("openclipart:shapes", 1, 1_000),
])
def test_builtin_specs_load(spec, n_classes, min_n):
    s = load_data(spec, 32)
    assert s.images.dtype == np.uint8 and s.images.shape[1:] == (32, 32, 3)
    assert len(s.classes) == n_classes and len(s) >= min_n
    assert set(np.unique(s.labels)) == set(range(n_classes))


def test_class_filter_keeps_the_right_digits():
    full = load_data("mnist@test", 32)
    sub = load_data("mnist:3,7@test", 32)
    assert sub.classes == ("3", "7")
    assert len(sub) == int(((full.labels == 3) | (full.labels == 7)).sum())
    # remapped labels point at the same images
    assert np.array_equal(sub.images[sub.labels == 1], full.images[full.labels == 7])


def test_grey_is_copied_to_three_channels():
    s = load_data("mnist:0@test", 32)
    assert np.array_equal(s.images[..., 0], s.images[..., 1])
    assert np.array_equal(s.images[..., 0], s.images[..., 2])


def _png(path, color, mode="RGB", size=(20, 12)):
    Image.new(mode, size, color).save(path)


def test_folder_with_classes_and_a_corrupt_file(tmp_path):
    (tmp_path / "cats").mkdir()
    (tmp_path / "dogs").mkdir()
    _png(tmp_path / "cats" / "a.png", (255, 0, 0))
    _png(tmp_path / "cats" / "b.png", (0, 0, 0, 0), mode="RGBA")  # transparent -> white
    _png(tmp_path / "dogs" / "c.png", (0, 255, 0))
    (tmp_path / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.warns(UserWarning, match="broken.png"):
        s = load_data(str(tmp_path), 16)
    assert s.classes == ("cats", "dogs") and len(s) == 3 and s.skipped == 1
    assert (s.images[1] == 255).all()  # alpha composited on white
    assert tuple(s.images[0, 8, 8]) == (255, 0, 0)


def test_flat_folder_is_one_class(tmp_path):
    for i in range(3):
        _png(tmp_path / f"{i}.png", (i, i, i), mode="RGB", size=(40, 40))
    s = load_data(str(tmp_path), 16)
    assert len(s) == 3 and len(s.classes) == 1


def test_preprocess_range_and_dequantisation():
    u8 = torch.tensor([[[[0, 128, 255]]]], dtype=torch.uint8).expand(64, 4, 4, 3).contiguous()
    x = preprocess(u8, torch.Generator().manual_seed(0), flip=False)
    assert x.shape == (64, 3, 4, 4)
    assert x.min() >= -1.0 and x.max() < 1.0
    white = x[:, 2]
    assert white.min() >= 255 / 128 - 1 and white.max() < 1.0


def test_spec_parsing():
    s = parse_spec("emoji:Animals,Food@all")
    assert (s.name, s.classes, s.split) == ("emoji", ("Animals", "Food"), "all")
    assert str(s) == "emoji:Animals,Food@all"


@pytest.mark.parametrize("spec,message", [
    ("cifar10", "unknown dataset 'cifar10'"),
    ("mnist:0,12", "unknown class '12' for mnist"),
    ("emoji:Robots", "unknown class 'Robots' for emoji"),
    ("mnist@valid", "unknown split 'valid' for mnist"),
    ("mnist:", "empty class name"),
    ("./no/such/folder", "data folder './no/such/folder' does not exist"),
])
def test_bad_specs_are_clear_errors(spec, message):
    with pytest.raises(GanMemoryError, match=message.replace("(", r"\(")):
        load_data(spec, 32)


def test_empty_folder_error(tmp_path):
    with pytest.raises(GanMemoryError, match="holds no images"):
        load_data(str(tmp_path), 32)


def test_not_fetched_error_gives_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("GANMEMORY_CACHE", str(tmp_path))
    with pytest.raises(GanMemoryError, match="run 'ganmemory data fetch mnist'"):
        load_data("mnist", 32)


def test_deduplicated_drops_repeats_and_blanks():
    from ganmemory.data import ImageSet
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    blank = np.full((8, 8, 3), 255, np.uint8)
    s = ImageSet("x", np.stack([a, b, a, blank, b]), np.array([0, 1, 0, 1, 1]), ("p", "q"))
    d = s.deduplicated()
    assert len(d) == 2 and np.array_equal(d.images[0], a) and np.array_equal(d.images[1], b)
    assert list(d.labels) == [0, 1] and "dropped 3" in d.note
