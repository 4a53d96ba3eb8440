import json
import math
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ganmemory.data import load_data
from ganmemory.errors import GanMemoryError
from ganmemory.lifelong import (Classifier, LifelongConfig, ReplayPool, Strategy, accuracy, accuracy_row,
                                average_accuracy, average_forgetting, get_strategy, load_task_data,
                                parse_tasks, pooled_accuracy, run_lifelong, seen_class_accuracy, to_input)
from ganmemory.lifelong import strategies as strategies_pkg
from ganmemory.lifelong.runner import make_strategy, train_task
from ganmemory.lifelong.strategies.ewc import EWC, diagonal_fisher, ewc_penalty
from ganmemory.lifelong.strategies.joint import Joint
from ganmemory.lifelong.judge import keep_most_confident, n_candidates, train_judge
from ganmemory.lifelong.tasks import TaskData
from ganmemory.store import load_artifact, save_artifact

# ---------------------------------------------------------------- tasks


def test_split_mnist_has_five_disjoint_tasks_with_consecutive_global_ids():
    tasks = parse_tasks(None, "split-mnist")
    assert tasks == parse_tasks("split:mnist:5")
    assert [t.classes for t in tasks] == [("0", "1"), ("2", "3"), ("4", "5"), ("6", "7"), ("8", "9")]
    assert [t.global_ids for t in tasks] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    assert [t.test_spec for t in tasks][0] == "mnist:0,1@test"
    seen = [c for t in tasks for c in t.classes]
    assert len(seen) == len(set(seen))


def test_split_rule_near_equal_groups_and_mixed_datasets():
    tasks = parse_tasks("split:mnist:3;fashion-mnist:bag,0")
    assert [len(t.classes) for t in tasks] == [4, 3, 3, 2]  # 10 = 4 + 3 + 3: the first groups get one more
    assert tasks[3].classes == ("bag", "tshirt")  # class indices resolve to the dataset's names
    assert tasks[3].global_ids == (10, 11)  # ids continue in order of first appearance


def test_task_data_labels_are_global_ids_of_the_right_images():
    first, second = parse_tasks("mnist:7,3;mnist:5")
    assert first.global_ids == (0, 1) and second.global_ids == (2,)
    data = load_task_data(first, 32)
    assert data.train_images.dtype == np.uint8 and data.train_labels.dtype == np.int64
    assert set(np.unique(data.test_labels)) == {0, 1}
    for gid, digit in ((0, "7"), (1, "3")):
        ref = load_data(f"mnist:{digit}@test", 32).images
        np.testing.assert_array_equal(data.test_images[data.test_labels == gid], ref)
    np.testing.assert_array_equal(data.train_images[data.train_labels == 1], load_data("mnist:3", 32).images)
    assert set(np.unique(load_task_data(second, 32).test_labels)) == {2}


def test_overlapping_tasks_error_names_both():
    with pytest.raises(GanMemoryError, match=r"task 1 \(mnist:0,1\) and task 3 \(mnist:1,4\) share class '1'"):
        parse_tasks("mnist:0,1;mnist:2,3;mnist:1,4")


@pytest.mark.parametrize("tasks,message", [
    ("./some/folder", "is an image folder"),
    ("emoji:Animals", "emoji has no train/test splits"),
    ("mnist:0,1@test", "drop '@test'"),
    ("mnist:0;;mnist:1", "empty task"),
    ("split:mnist:0", "K must be between 1 and the 10 classes"),
    ("split:mnist", "split:NAME:K"),
    ("mnist:0,0", "listed twice"),
])
def test_bad_task_strings(tasks, message):
    with pytest.raises(GanMemoryError, match=message):
        parse_tasks(tasks)


def test_tasks_or_benchmark_exactly_one():
    with pytest.raises(GanMemoryError, match="exactly one"):
        parse_tasks("mnist:0", "split-mnist")
    with pytest.raises(GanMemoryError, match="unknown benchmark 'nope'"):
        parse_tasks(None, "nope")

# ---------------------------------------------------------------- config, classifier, registry


def test_config_validation_and_round_trip():
    cfg = LifelongConfig(iters=5, ewc_lambda=10.0)
    assert LifelongConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(GanMemoryError, match="--iters must be >= 1"):
        LifelongConfig(iters=0)
    with pytest.raises(GanMemoryError, match="--classifier must be one of cnn, el0"):
        LifelongConfig(classifier="resnet")
    with pytest.raises(GanMemoryError, match="unknown lifelong option"):
        LifelongConfig.from_dict({"iter": 3})


def test_cnn_parameter_count_and_shapes():
    model = Classifier(10)
    assert model.n_parameters() == 356_810 == 355_520 + 129 * 10  # as the docstring says
    assert model(torch.zeros(3, 3, 32, 32)).shape == (3, 10)


def test_to_input_keeps_orientation_and_range():
    img = np.zeros((1, 4, 4, 3), np.uint8)
    img[0, 0, 3] = 255  # top right corner
    x = to_input(img)  # [1, 3, 4, 4]
    assert x.shape == (1, 3, 4, 4) and x.min() == -1 and x.max() == 1
    assert (x[0, :, 0, 3] == 1).all() and x[0, :, 0, 0].eq(-1).all()


def test_strategy_registry(monkeypatch):
    assert get_strategy("finetune").name == "finetune" and get_strategy("ewc") is EWC
    with pytest.raises(GanMemoryError, match="unknown strategy 'nope'; known: finetune, ewc, joint"):
        get_strategy("nope")
    monkeypatch.setitem(strategies_pkg.STRATEGIES, "ghost",
                        strategies_pkg.StrategyEntry("no_such_module", "Ghost", "missing"))
    with pytest.raises(GanMemoryError, match="strategy 'ghost' is not available"):
        get_strategy("ghost")
    with pytest.raises(GanMemoryError, match="strategy 'finetune' does not take the option"):
        make_strategy("finetune", LifelongConfig(), ".", print, {"memory": "x"})

# ---------------------------------------------------------------- replay pool


def _constant_images(values, uint8, size=4):
    """One image per value, every pixel equal to it: the draw's pairing can be read back."""
    if uint8:
        return torch.tensor(values, dtype=torch.uint8)[:, None, None, None].expand(-1, size, size, 3).clone()
    return torch.tensor(values, dtype=torch.float32)[:, None, None, None].expand(-1, 3, size, size).clone()


def test_replay_pool_draws_the_same_count_from_every_task():
    pool = ReplayPool()
    assert pool.draw(5, torch.Generator().manual_seed(0)) is None
    pool.add("a", _constant_images([0, 255] * 5, uint8=True), torch.tensor([0, 1] * 5))  # 10 images
    pool.add("b", _constant_images([-0.5, 0.5, 0.25], uint8=False), torch.tensor([4, 5, 6]))  # 3 images
    assert pool.sizes() == {"a": 10, "b": 3}
    x, y = pool.draw(7, torch.Generator().manual_seed(1))
    assert x.shape == (14, 3, 4, 4) and x.dtype == torch.float32 and y.shape == (14,)
    assert set(y[:7].tolist()) <= {0, 1} and set(y[7:].tolist()) <= {4, 5, 6}
    value = {0: -1.0, 1: 1.0, 4: -0.5, 5: 0.5, 6: 0.25}  # uint8 pools come back in [-1, 1]
    for img, label in zip(x, y.tolist()):
        assert torch.all(img == value[label])
    with pytest.raises(ValueError, match="one label per image"):
        pool.add("c", _constant_images([1, 2], uint8=True), torch.tensor([0]))


def test_replay_pool_current_task_comes_last_and_moves_to_the_earlier_ones():
    pool = ReplayPool()
    with pytest.raises(ValueError, match="no current pool"):
        pool.draw(2, torch.Generator().manual_seed(0), n_current=1)
    pool.set_current("now", _constant_images([0] * 3, uint8=True), torch.tensor([2, 2, 2]))
    x, y = pool.draw(5, torch.Generator().manual_seed(0), n_current=3)  # no earlier task yet
    assert y.tolist() == [2, 2, 2] and torch.all(x == -1.0)
    assert pool.draw(5, torch.Generator().manual_seed(0)) is None and len(pool) == 0
    pool.promote_current()
    assert pool.current is None and pool.sizes() == {"now": 3}
    pool.set_current("next", _constant_images([255] * 2, uint8=True), torch.tensor([4, 4]))
    x, y = pool.draw(2, torch.Generator().manual_seed(0), n_current=1)
    assert y.tolist() == [2, 2, 4] and torch.all(x[2] == 1.0)
    pool.clear()
    assert pool.current is None and len(pool) == 0


class _Recorder(Strategy):
    """Replays one earlier task and records what the runner asks and feeds."""
    name = "recorder"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pool, self.asked = ReplayPool(), []
        self.pool.add("earlier", _constant_images([7] * 4, uint8=True, size=8), torch.full((4,), 3))

    def replay(self, n_current, gen):
        self.asked.append(n_current)
        return self.pool.draw(n_current, gen)


def _train_recorded(tmp_path, strategy_cls, iters):
    """``iters`` steps of ``train_task`` with a recording strategy; (strategy, batch sizes fed, run again)."""
    cfg = LifelongConfig(iters=iters, batch_size=6, resolution=8)
    model = Classifier(4, resolution=8)
    seen = []
    model.register_forward_hook(lambda m, inp, out: seen.append(len(inp[0])))
    strategy = strategy_cls(cfg, tmp_path, print)
    images = np.random.default_rng(0).integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)

    def again():
        train_task(model, images, np.zeros(20, np.int64), strategy, cfg, 1, "test", progress=False)
    again()
    return strategy, seen, again


def test_keep_most_confident_takes_the_top_of_each_class():
    conf = np.array([0.1, 0.9, 0.5, 0.5, 0.8, 0.2, 0.7])
    labels = np.array([3, 3, 3, 3, 5, 5, 5])
    assert keep_most_confident(conf, labels, 2).tolist() == [1, 2, 4, 6]  # a tie keeps the earlier image
    assert keep_most_confident(conf, labels, 3).tolist() == [1, 2, 3, 4, 5, 6]  # class 5 has only 3
    assert n_candidates(5, 1.0) == 5 and n_candidates(5, 0.5) == 10 and n_candidates(10, 0.67) == 15
    with pytest.raises(ValueError, match="one confidence per label"):
        keep_most_confident(conf, labels[:3], 1)


def test_the_judge_is_seeded_and_leaves_the_global_random_state_alone():
    data = load_task_data(parse_tasks("mnist:2,3")[0], 16)
    cfg = LifelongConfig(resolution=16, judge_iters=3, seed=4)
    before = torch.get_rng_state()
    a = train_judge(data.train_images, data.train_labels, 4, cfg, 1)
    assert torch.equal(torch.get_rng_state(), before)
    b = train_judge(data.train_images, data.train_labels, 4, cfg, 1)
    c = train_judge(data.train_images, data.train_labels, 4, cfg, 2)  # another task starts elsewhere
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.head.weight, c.head.weight)
    assert not a.training and a.n_classes == 4 and a.backbone_name == "cnn"


def test_train_task_appends_replay_of_batch_size_per_earlier_task(tmp_path):
    strategy, seen, _ = _train_recorded(tmp_path, _Recorder, iters=3)
    assert strategy.asked == [6, 6, 6] and seen == [12, 12, 12]


class _HalfReal(_Recorder):
    def real_per_batch(self, batch_size):
        return batch_size // 2


def test_train_task_takes_the_strategys_count_of_real_images(tmp_path):
    strategy, seen, again = _train_recorded(tmp_path, _HalfReal, iters=2)
    assert strategy.asked == [6, 6] and seen == [9, 9]  # 3 real + 6 replayed

    strategy.real_per_batch = lambda batch_size: 0  # replay_current 1: the batch is all replay
    seen.clear()
    again()
    assert strategy.asked == [6, 6, 6, 6] and seen == [6, 6]

    strategy.real_per_batch = lambda batch_size: 7
    with pytest.raises(GanMemoryError, match="asked for 7 real images per batch of 6; it must be 0 to 6"):
        again()
    strategy.real_per_batch = lambda batch_size: 0
    strategy.replay = lambda n_current, gen: None
    with pytest.raises(GanMemoryError, match="task 2: strategy 'recorder' asked for no real images and replayed none"):
        again()


# ---------------------------------------------------------------- EWC


def test_ewc_penalty_formula():
    params = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    anchors = [torch.tensor([0.0, 0.0]), torch.tensor([[1.0]])]
    fisher = [torch.tensor([0.5, 2.0]), torch.tensor([[4.0]])]
    # (10 / 2) * (0.5 * 1 + 2 * 4 + 4 * 4) = 122.5
    assert float(ewc_penalty(params, anchors, fisher, 10.0)) == pytest.approx(122.5)
    assert float(ewc_penalty(anchors, anchors, fisher, 10.0)) == 0.0


def test_ewc_strategy_penalty_zero_at_anchor_and_positive_away(tmp_path):
    cfg = LifelongConfig(fisher_samples=8, resolution=8)
    model = Classifier(4, resolution=8)
    ewc = EWC(cfg, tmp_path, lambda s: None)
    assert ewc.penalty(model) is None  # nothing to protect before the first task
    rng = np.random.default_rng(0)
    data = TaskData(rng.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8), np.zeros(12, np.int64),
                    np.zeros((1, 8, 8, 3), np.uint8), np.zeros(1, np.int64))
    ewc.after_task(model, 0, parse_tasks("mnist:0")[0], data)
    assert float(ewc.penalty(model).detach()) == 0.0
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    assert float(ewc.penalty(model).detach()) > 0


def test_fisher_is_the_mean_of_squared_per_image_gradients():
    model = Classifier(3, resolution=8)
    images = np.random.default_rng(1).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    fisher = diagonal_fisher(model, images, torch.Generator().manual_seed(0))
    # the same sampled labels: diagonal_fisher draws them from the model's softmax with this generator
    with torch.no_grad():
        labels = torch.multinomial(model(to_input(images)).softmax(1), 1,
                                   generator=torch.Generator().manual_seed(0))[:, 0]
    ref = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(len(images)):
        model.zero_grad()
        F.cross_entropy(model(to_input(images[i:i + 1])), labels[i:i + 1]).backward()
        for n, p in model.named_parameters():
            ref[n] += p.grad.pow(2) / len(images)
    for n in ref:
        torch.testing.assert_close(fisher[n], ref[n], rtol=1e-4, atol=1e-9)

# ---------------------------------------------------------------- metrics


def test_average_forgetting_and_accuracy_by_hand():
    matrix = [[0.9], [0.5, 0.8], [0.3, 0.6, 0.95]]
    # task 0: max(0.9, 0.5) - 0.3 = 0.6; task 1: 0.8 - 0.6 = 0.2; mean 0.4
    assert average_forgetting(matrix) == pytest.approx(0.4)
    assert average_accuracy(matrix[-1]) == pytest.approx((0.3 + 0.6 + 0.95) / 3)
    assert math.isnan(average_forgetting([[0.7]]))
    with pytest.raises(ValueError, match="rows of length"):
        average_forgetting([[0.1, 0.2]])


def test_pooled_accuracy_equals_accuracy_on_the_union():
    model = Classifier(3, resolution=8)
    rng = np.random.default_rng(2)
    sets = [(rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8), rng.integers(0, 3, n)) for n in (7, 13)]
    row = accuracy_row(model, sets)
    assert pooled_accuracy(row, [7, 13]) == pytest.approx(seen_class_accuracy(model, sets))
    union = (np.concatenate([x for x, _ in sets]), np.concatenate([y for _, y in sets]))
    assert seen_class_accuracy(model, sets) == pytest.approx(accuracy(model, *union))
    assert accuracy(model, *union, batch=3) == accuracy(model, *union)  # batch size does not change it


def test_joint_trains_on_every_task_so_far(tmp_path):
    joint = Joint(LifelongConfig(), tmp_path, print)
    a = TaskData(np.zeros((3, 4, 4, 3), np.uint8), np.array([0, 1, 0]), None, None)
    b = TaskData(np.ones((2, 4, 4, 3), np.uint8), np.array([2, 3]), None, None)
    task = parse_tasks("mnist:0")[0]
    assert len(joint.train_arrays(0, task, a)[0]) == 3
    joint.after_task(None, 0, task, a)
    images, labels = joint.train_arrays(1, task, b)
    assert images.shape == (5, 4, 4, 3) and labels.tolist() == [0, 1, 0, 2, 3]

# ---------------------------------------------------------------- the runner, end to end


@pytest.mark.parametrize("strategy", ["finetune", "ewc", "joint"])
def test_tiny_run_writes_results(tmp_path, strategy):
    tasks = parse_tasks("mnist:0,1;mnist:2,3")
    cfg = LifelongConfig(iters=20, batch_size=16, fisher_samples=16)
    lines = []
    res = run_lifelong(tasks, strategy, cfg, tmp_path, progress=False, log=lines.append)
    stored = json.loads((tmp_path / "results.json").read_text())
    assert stored == json.loads(json.dumps(res))
    matrix = stored["accuracy_matrix"]
    assert [len(r) for r in matrix] == [1, 2]
    assert all(0.0 <= a <= 1.0 for r in matrix for a in r)
    assert len(stored["seen_class_accuracy"]) == len(stored["average_accuracy"]) == 2
    assert stored["final_average_accuracy"] == pytest.approx(np.mean(matrix[1]))
    assert stored["average_forgetting"] == pytest.approx(matrix[0][0] - matrix[1][0])  # one earlier task
    assert stored["n_classes"] == 4 and stored["classifier"]["parameters"] == 355_520 + 129 * 4
    assert stored["complete"] and len(stored["seconds_per_task"]) == 2 and stored["strategy"] == strategy
    assert stored["config"] == cfg.to_dict()
    table = (tmp_path / "table.md").read_text().splitlines()
    assert sum(line.startswith("| 1: mnist:0,1") or line.startswith("| 2: mnist:2,3") for line in table) == 2
    assert (tmp_path / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any("accuracy on seen classes" in line for line in lines)


def test_runs_are_deterministic(tmp_path):
    tasks = parse_tasks("mnist:0,1")
    cfg = LifelongConfig(iters=5, batch_size=8)
    a = run_lifelong(tasks, "finetune", cfg, tmp_path / "a", progress=False, log=lambda s: None)
    b = run_lifelong(tasks, "finetune", cfg, tmp_path / "b", progress=False, log=lambda s: None)
    assert a["accuracy_matrix"] == b["accuracy_matrix"] and a["last_loss"] == b["last_loss"]


@pytest.mark.parametrize("strategy", ["ewc", "joint"])
def test_a_resumed_run_computes_what_the_whole_run_does(tmp_path, resumed_equals_whole, strategy):
    tasks = parse_tasks("mnist:0,1;mnist:2,3;mnist:4,5")
    cfg = LifelongConfig(iters=6, batch_size=8, fisher_samples=8)

    def run(out, resume=False, log=print, cfg=cfg):
        return run_lifelong(tasks, strategy, cfg, out, progress=False, log=log, resume=resume)

    lines = resumed_equals_whole(run)
    assert lines[0] == f"resuming '{tmp_path / 'cut'}' after task 2 of 3"
    assert len(lines) == 2 if strategy == "joint" else 3  # task 3's line (and ewc's Fisher line)


def test_resume_refuses_other_options_and_a_missing_run(tmp_path, stopped):
    tasks = parse_tasks("mnist:0,1;mnist:2,3")
    cfg = LifelongConfig(iters=2, batch_size=4, fisher_samples=4)
    with pytest.raises(GanMemoryError, match="--resume given but '.*' has no lifelong run to continue"):
        run_lifelong(tasks, "ewc", cfg, tmp_path, progress=False, log=print, resume=True)
    assert not tmp_path.joinpath("classifier.safetensors").exists()
    stopped(lambda: run_lifelong(tasks, "ewc", cfg, tmp_path, progress=False, log=print), 1)
    ckpt = tmp_path / "classifier.safetensors"
    before = ckpt.read_bytes()
    for strategy, other, what in [("joint", cfg, 'strategy "ewc", not "joint"'),
                                  ("ewc", replace(cfg, iters=3), 'config {"iters": 2}, not {"iters": 3}')]:
        with pytest.raises(GanMemoryError, match=f"cannot resume '.*': it was started with {re.escape(what)}$"):
            run_lifelong(tasks, strategy, other, tmp_path, progress=False, log=print, resume=True)
    with pytest.raises(GanMemoryError, match="it was started with tasks "):
        run_lifelong(parse_tasks("mnist:0,1;mnist:4,5"), "ewc", cfg, tmp_path, progress=False, log=print, resume=True)
    assert ckpt.read_bytes() == before
    res = run_lifelong(tasks, "ewc", cfg, tmp_path, progress=False, log=print, resume=True)
    assert res["complete"] and [len(r) for r in res["accuracy_matrix"]] == [1, 2]


def test_a_run_saved_before_the_replay_judge_resumes(tmp_path, stopped):
    """Checkpoints written before ``replay_keep`` and ``judge_iters`` existed ran without a judge."""
    tasks = parse_tasks("mnist:0,1;mnist:2,3")
    cfg = LifelongConfig(iters=2, batch_size=4, fisher_samples=4)
    stopped(lambda: run_lifelong(tasks, "ewc", cfg, tmp_path, progress=False, log=print), 1)
    tensors, meta = load_artifact(tmp_path / "classifier.safetensors")
    for key in ("replay_keep", "judge_iters"):
        del meta["results"]["config"][key]
    save_artifact(tmp_path / "classifier.safetensors", tensors, meta)
    with pytest.raises(GanMemoryError, match=re.escape('config {"replay_keep": 1.0}, not {"replay_keep": 0.5}')):
        run_lifelong(tasks, "ewc", replace(cfg, replay_keep=0.5), tmp_path, progress=False, log=print, resume=True)
    assert run_lifelong(tasks, "ewc", cfg, tmp_path, progress=False, log=print, resume=True)["complete"]
