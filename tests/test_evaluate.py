import json
import subprocess
import sys

import numpy as np
import pytest

from ganmemory.errors import GanMemoryError
from ganmemory.memory import MemoryBank
from ganmemory.train import TrainConfig


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ganmemory", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture
def scored_bank(tmp_path, tiny_source, image_folder, monkeypatch):
    monkeypatch.setenv("GANMEMORY_CACHE", str(tmp_path / "cache"))
    bank = MemoryBank.create(tmp_path / "bank", tiny_source)
    cfg = TrainConfig(iters=3, batch_size=4, sample_every=0, ckpt_every=0)
    bank.learn("a", image_folder["a"], cfg, progress=False, log=lambda _m: None, eval_every=2, eval_n=8)
    return bank


def test_learn_eval_every_records_history_and_plot(scored_bank):
    hist = scored_bank.task_meta("a")["metrics"]
    assert [h["iteration"] for h in hist] == [0, 2, 3]
    assert all(h["FD-EL0"] > 0 and h["n"] == 8 for h in hist)
    assert (scored_bank.root / "plots" / "a.png").stat().st_size > 1000


def test_evaluate_names_its_feature_network(tmp_path, scored_bank, image_folder):
    proc = run("evaluate", "--memory", str(scored_bank.root), "--task", "a", "--data", image_folder["a"],
               "--n", "8", "--json", str(tmp_path / "r.json"))
    assert proc.returncode == 0, proc.stderr
    assert "FD-EL0 = " in proc.stdout and "EfficientNet-Lite0" in proc.stdout and "FID" not in proc.stdout
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["metric"] == "FD-EL0" and res["n_generated"] == 8 and res["value"] > 0


def test_fid_without_inception_weights_says_how_to_get_them(tmp_path, scored_bank, image_folder):
    proc = run("evaluate", "--memory", str(scored_bank.root), "--task", "a", "--data", image_folder["a"],
               "--metric", "fid", "--n", "8")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "pt_inception-2015-12-05" in proc.stderr


def test_scores_while_learning_record_seconds_data_and_a_grid_each(scored_bank, image_folder, tmp_path):
    hist = scored_bank.task_meta("a")["metrics"]
    seconds = [h["seconds"] for h in hist]
    assert seconds[0] == 0 and seconds == sorted(seconds) and all(h["data"] == image_folder["a"] for h in hist)
    grids = sorted(p.name for p in (scored_bank.root / "plots" / "a").iterdir())
    assert grids == ["iter_0000000.png", "iter_0000002.png", "iter_0000003.png"]
    from PIL import Image
    last = np.asarray(Image.open(scored_bank.root / "plots" / "a" / "iter_0000003.png"))
    from ganmemory.images import grid_image
    want = np.asarray(grid_image(scored_bank.sample("a", 64, seed=0), nrow=8).resize(last.shape[1::-1],
                                                                                      Image.NEAREST))
    assert np.array_equal(last, want)  # the grid is the finished task's samples for seed 0
    scored_bank.learn("b", image_folder["b"], TrainConfig(iters=2, batch_size=4, sample_every=0, ckpt_every=0),
                      progress=False, log=lambda _m: None, eval_every=2, eval_n=8, eval_data=image_folder["c"])
    assert {h["data"] for h in scored_bank.task_meta("b")["metrics"]} == {image_folder["c"]}
    scored_bank.remove("a")
    assert not (scored_bank.root / "plots" / "a").exists() and not (scored_bank.root / "plots" / "a.png").exists()


@pytest.fixture
def labelled(tmp_path):
    """A folder of two classes of 12 random 16 px images each."""
    from PIL import Image
    rng = np.random.default_rng(5)
    for c in ("cat", "dog"):
        (tmp_path / "pets" / c).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "pets" / c / f"{i}.png")
    return str(tmp_path / "pets")


def test_cas_trains_on_generated_images_of_each_class(tmp_path, tiny_source, labelled):
    from ganmemory.evaluate import CASProtocol, classification_accuracy_score, real_data_accuracy
    bank = MemoryBank.create(tmp_path / "bank", tiny_source)
    bank.learn("pets", labelled, TrainConfig(iters=2, batch_size=4, conditional=True, sample_every=0, ckpt_every=0),
               progress=False, log=lambda _m: None)
    protocol = CASProtocol(per_class=4, steps=3, batch=4)
    res = classification_accuracy_score(bank, "pets", labelled, protocol)
    assert res["metric"] == "CAS" and 0 <= res["value"] <= 1 and res["n_test"] == 24
    # 12 test images per class: the whole-split accuracy is the mean of the two recalls
    assert set(res["per_class"]) == {"cat", "dog"}
    assert res["value"] == pytest.approx(sum(res["per_class"].values()) / 2, abs=1e-4)
    assert res == classification_accuracy_score(bank, "pets", labelled, protocol)  # a fixed protocol
    ceiling = real_data_accuracy(labelled, labelled, 16, protocol)
    assert ceiling["metric"] == "real-data accuracy" and 0 <= ceiling["value"] <= 1
    assert set(ceiling["per_class"]) == {"cat", "dog"}
    with pytest.raises(GanMemoryError, match="fewer than 20 images of class 'cat'"):
        real_data_accuracy(labelled, labelled, 16, CASProtocol(per_class=20))
    bank.learn("plain", labelled, TrainConfig(iters=1, batch_size=4, sample_every=0, ckpt_every=0),
               progress=False, log=lambda _m: None)
    with pytest.raises(GanMemoryError, match="task 'plain' is not class-conditional"):
        classification_accuracy_score(bank, "plain", labelled, protocol)
    with pytest.raises(GanMemoryError, match="CAS option steps must be >= 1"):
        CASProtocol(steps=0)


def test_evaluate_cas_on_the_command_line_prints_each_class_and_the_ceiling(tmp_path, tiny_source, labelled):
    bank = MemoryBank.create(tmp_path / "bank", tiny_source)
    bank.learn("pets", labelled, TrainConfig(iters=2, batch_size=4, conditional=True, sample_every=0, ckpt_every=0),
               progress=False, log=lambda _m: None)
    bank.learn("plain", labelled, TrainConfig(iters=1, batch_size=4, sample_every=0, ckpt_every=0),
               progress=False, log=lambda _m: None)
    from ganmemory.evaluate import CASProtocol, classification_accuracy_score, real_data_accuracy
    protocol = CASProtocol(per_class=4, steps=3, batch=64, seed=2)
    proc = run("evaluate", "--memory", str(bank.root), "--task", "pets", "--data", labelled, "--metric", "cas",
               "--per-class", "4", "--cas-steps", "3", "--seed", "2", "--ceiling", labelled,
               "--json", str(tmp_path / "cas.json"))
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "cas.json").read_text())
    # the command runs the library's protocol, to the digit
    want = classification_accuracy_score(bank, "pets", labelled, protocol)
    assert {k: res[k] for k in want} == want
    assert res["ceiling"] == real_data_accuracy(labelled, labelled, 16, protocol)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"task 'pets' vs '{labelled}': CAS = {100 * want['value']:.2f} %")
    assert "cat" in lines[1] and "dog" in lines[1]
    assert lines[2].startswith("trained on the task's images (CAS)")
    assert lines[2].split()[-1] == f"{100 * want['value']:.2f}%"
    assert lines[3].startswith(f"trained on real images of '{labelled}'")
    proc = run("evaluate", "--memory", str(bank.root), "--task", "plain", "--data", labelled, "--metric", "cas")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "task 'plain' is not class-conditional" in proc.stderr
