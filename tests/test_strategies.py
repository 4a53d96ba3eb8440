"""Strategies own their options: a strategy defined outside the package runs through the CLI."""

import json
from dataclasses import dataclass, field

import pytest

from ganmemory.cli import main
from ganmemory.errors import GanMemoryError
from ganmemory.lifelong import strategies
from ganmemory.lifelong.strategies import Strategy, StrategyOptions, register_strategy, strategy_options


@dataclass(frozen=True)
class ToyOptions(StrategyOptions):
    toy_weight: float = field(default=0.5, metadata={"help": "how much the toy's penalty counts"})
    toy_rounds: int = field(default=1, metadata={"help": "how many times the toy says hello"})


class Toy(Strategy):
    """Fine-tuning plus a zero penalty that counts the steps it is asked for."""

    name = "toy"
    Options = ToyOptions
    config_fields = ("ewc_lambda",)  # a LifelongConfig field it shares with ewc
    seen: dict = {}

    def __init__(self, cfg, out, log, toy_weight=0.5, toy_rounds=1):
        super().__init__(cfg, out, log)
        Toy.seen.update(weight=toy_weight, rounds=toy_rounds, ewc_lambda=cfg.ewc_lambda, steps=0)

    def penalty(self, model):
        Toy.seen["steps"] += 1
        return None


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setattr(strategies, "STRATEGIES", dict(strategies.STRATEGIES))  # undone after the test
    register_strategy("toy", Toy, "a toy strategy defined in a test file")
    Toy.seen.clear()
    return Toy


def test_a_registered_strategy_gets_its_flags_and_runs(toy, tmp_path, capsys):
    assert strategy_options("toy") == ["ewc_lambda", "toy_weight", "toy_rounds"]
    out = tmp_path / "run"
    code = main(["lifelong", "--tasks", "mnist:0,1", "--strategy", "toy", "--toy-weight", "0.7", "--toy-rounds", "3",
                 "--ewc-lambda", "5", "--iters", "4", "--batch", "4", "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "toy: final average accuracy" in printed.out and "forgetting" not in printed.out  # one task
    assert toy.seen == {"weight": 0.7, "rounds": 3, "ewc_lambda": 5.0, "steps": 4}
    results = json.loads((out / "results.json").read_text())
    assert results["strategy"] == "toy" and results["complete"]


def test_a_registered_strategy_is_in_the_help_and_its_flags_are_its_own(toy, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["lifelong", "--help"])
    text = capsys.readouterr().out
    assert "a toy strategy defined in a test file" in text and "--toy-weight" in text
    assert "ewc, toy: EWC penalty weight" in " ".join(text.split())
    code = main(["lifelong", "--tasks", "mnist:0,1", "--strategy", "joint", "--toy-weight", "0.7", "--out",
                 str(tmp_path / "x")])
    assert code == 2
    assert capsys.readouterr().err.strip() == "ganmemory lifelong: error: --toy-weight is for toy, not joint"


def test_registering_needs_a_strategy_and_a_new_name(toy):
    with pytest.raises(GanMemoryError, match="must be a subclass of Strategy"):
        register_strategy("odd", dict, "not a strategy")
    with pytest.raises(GanMemoryError, match="'toy' is already registered"):
        register_strategy("toy", Toy, "again")
