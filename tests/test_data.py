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
    ("icons:tango", 1, 150),
    ("icons", 4, 2_000),
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


def test_union_holds_every_part_in_order():
    a, b = load_data("mnist:3@test", 32), load_data("fashion-mnist:bag,boot@test", 32)
    u = load_data("mnist:3@test+fashion-mnist:bag,boot@test", 32)
    assert u.classes == ("mnist:3", "fashion-mnist:bag", "fashion-mnist:boot")
    assert np.array_equal(u.images, np.concatenate([a.images, b.images]))
    assert np.array_equal(u.labels, np.concatenate([a.labels, b.labels + 1]))
    assert u.spec == "mnist:3@test+fashion-mnist:bag,boot@test"


def test_a_folder_whose_name_holds_a_plus_is_one_folder(tmp_path):
    folder = tmp_path / "a+b"
    folder.mkdir()
    _png(folder / "x.png", (1, 2, 3))
    assert len(load_data(str(folder), 16)) == 1


def test_icons_keep_one_size_real_files_and_no_faces(tmp_path, monkeypatch):
    monkeypatch.setenv("GANMEMORY_CACHE", str(tmp_path))
    raw = tmp_path / "datasets" / "icons" / "raw"
    for rel in ("faenza/Faenza/apps/64/kept.png", "faenza/Faenza/apps/32/other-size.png",
                "faenza/Faenza/emotes/64/face-smile.png", "faenza/Faenza/status/64/kept-too.png"):
        (raw / rel).parent.mkdir(parents=True, exist_ok=True)
        _png(raw / rel, (len(rel), 0, 0), size=(64, 64))
    (raw / "faenza/Faenza/apps/64/alias.png").symlink_to(raw / "faenza/Faenza/apps/64/kept.png")
    (raw / ".complete").write_text("test\n")
    s = load_data("icons:faenza", 16)
    # the two real 64 px icons, in path order: apps/64/kept.png, status/64/kept-too.png
    assert len(s) == 2
    assert [int(v) for v in s.images[:, 8, 8, 0]] == [len("faenza/Faenza/apps/64/kept.png"),
                                                     len("faenza/Faenza/status/64/kept-too.png")]


@pytest.mark.parametrize("spec,message", [
    ("cifar10", "unknown dataset 'cifar10'"),
    ("mnist+cifar10", "unknown dataset 'cifar10'"),
    ("mnist:0+mnist:0", "data spec 'mnist:0\\+mnist:0': a part is listed twice"),
    ("icons:crystal", "unknown class 'crystal' for icons"),
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
