import json
import subprocess
import sys

import pytest

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
