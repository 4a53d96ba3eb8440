"""A wall-clock budget turned into iterations, and the demo sized by it."""

import json
import math

import pytest

from ganmemory.budget import iterations_for, seconds_per_step
from ganmemory.demo import DEMO_TASKS, run_demo
from ganmemory.errors import GanMemoryError
from ganmemory.memory import MemoryBank
from ganmemory.train import TrainConfig
from ganmemory.train.precision import cpu_name


def test_iterations_for_rounds_down_to_tidy_counts():
    assert iterations_for(200.0, 0.11) == 1800  # 1,818 steps fit
    assert iterations_for(200.0, 0.11, multiple=1) == 1818
    assert iterations_for(1.0, 0.11) == 50  # never fewer than ``least``
    assert iterations_for(1.0, 0.11, least=1) == 1
    for seconds, step in ((0.0, 0.1), (10.0, 0.0), (-1.0, 0.1), (math.nan, 0.1)):
        with pytest.raises(GanMemoryError, match="positive seconds"):
            iterations_for(seconds, step)


def test_seconds_per_step_leaves_nothing_behind(tmp_path, tiny_source, image_folder):
    (tmp_path / "scratch").mkdir()
    step = seconds_per_step(image_folder["a"], TrainConfig(batch_size=4), source=tiny_source, steps=3,
                            scratch=tmp_path / "scratch")
    assert 0 < step < 10
    assert list((tmp_path / "scratch").iterdir()) == []
    with pytest.raises(GanMemoryError, match="at least 1 step"):
        seconds_per_step(image_folder["a"], TrainConfig(batch_size=4), source=tiny_source, steps=0)
    with pytest.raises(GanMemoryError, match="at least 1 repeat"):
        seconds_per_step(image_folder["a"], TrainConfig(batch_size=4), source=tiny_source, repeats=0)


def test_seconds_per_step_keeps_each_length_s_least_disturbed_time(monkeypatch, tmp_path, tiny_source, image_folder):
    # short / long pairs: the first pair disturbed in its long run, the second in its short run
    timed = iter([9.0, 1.0, 9.0, 5.0, 4.0])  # warm-up, short, long, short, long
    monkeypatch.setattr(MemoryBank, "learn", lambda *a, **k: {"seconds": next(timed)})
    step = seconds_per_step(image_folder["a"], TrainConfig(batch_size=4), source=tiny_source, steps=10,
                            scratch=tmp_path)
    assert step == pytest.approx((4.0 - 1.0) / 30)


def test_a_demo_sized_by_minutes_repeats_exactly_with_its_printed_iters(tmp_path, tiny_source):
    said = []
    timed = run_demo(tmp_path / "timed", source=tiny_source, minutes=0.01, eval_n=0, progress=False,
                     log=said.append)
    iters = {t["iterations"] for t in timed["tasks"]}
    assert len(iters) == 1 and timed["seconds_per_step"] > 0 and timed["all_unchanged"]
    (n,) = iters
    assert any(f"--iters {n} learns as many on any machine" in line for line in said), said
    again = run_demo(tmp_path / "again", iters=n, source=tiny_source, eval_n=0, progress=False, log=lambda _: None)
    assert again["seconds_per_step"] is None and again["all_unchanged"]
    stored = [MemoryBank(tmp_path / "again" / "bank").task_meta(name)["train"]["precision"] for name, _ in DEMO_TASKS]
    assert [t["precision"] for t in again["tasks"]] == stored and stored[0] in ("fp32", "bf16")
    assert json.loads((tmp_path / "again" / "demo.json").read_text())["processor"] == cpu_name()
    for name in ("mnist", "fashion-mnist", "emoji"):
        assert (tmp_path / "timed" / f"{name}.png").read_bytes() == (tmp_path / "again" / f"{name}.png").read_bytes()
