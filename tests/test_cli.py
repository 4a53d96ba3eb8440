import json
import subprocess
import sys

import pytest
import torch

from ganmemory.nets import Discriminator, Generator, NetConfig
from ganmemory.source import Source, default_source_path


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ganmemory", *args], capture_output=True, text=True, cwd=cwd)


def _one_clear_error(proc, needle):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], proc.stderr


def test_sample_from_shipped_source_writes_a_grid(tmp_path):
    out = tmp_path / "grid.png"
    proc = run("sample", "-n", "16", "--seed", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    from PIL import Image
    img = Image.open(out)
    assert img.size[0] > 64 and img.mode == "RGB"


def test_shipped_source_is_small_and_verified():
    path = default_source_path()
    assert path.stat().st_size <= 15 * 2**20
    src = Source.load()
    assert src.cfg.resolution == 32
    a, b = src.sample(4, seed=7), src.sample(4, seed=7)
    assert torch.equal(a, b)


@pytest.mark.parametrize("args,needle", [
    (["pretrain", "--data", "nope", "--out", "x"], "unknown dataset 'nope'"),
    (["pretrain", "--data", "./missing_dir", "--out", "x"], "data folder './missing_dir' does not exist"),
    (["sample", "--source", "missing.safetensors", "--out", "g.png"], "file 'missing.safetensors' does not exist"),
    (["data", "fetch", "cifar"], "unknown built-in dataset 'cifar'"),
    (["lifelong", "--tasks", "mnist:0,1;mnist:1,2", "--strategy", "joint", "--out", "x"], "class '1'"),
    (["lifelong", "--benchmark", "split-mnist", "--strategy", "ewc", "--memory", "b", "--out", "x"],
     "--memory is for gan-memory, not ewc"),
    (["lifelong", "--benchmark", "split-mnist", "--strategy", "joint", "--replay-current", "0.5", "--out", "x"],
     "--replay-current is for gan-memory and mergan, not joint"),
    (["lifelong", "--benchmark", "split-mnist", "--strategy", "gan-memory", "--replay-current", "1.5", "--out", "x"],
     "option --replay-current must be in [0, 1], got 1.5"),
    (["lifelong", "--benchmark", "split-mnist", "--strategy", "mergan", "--replay-keep", "0.5", "--out", "x"],
     "--replay-keep is for gan-memory, not mergan"),
    (["lifelong", "--benchmark", "split-mnist", "--strategy", "gan-memory", "--replay-keep", "0", "--out", "x"],
     "option --replay-keep must be in (0, 1], got 0.0"),
    (["lifelong", "--benchmark", "split-mnist", "--strategy", "joint", "--out", "x", "--resume"],
     "--resume given but 'x' has no lifelong run to continue"),
    (["import-gan-stability", "missing.pt", "--out", "s.safetensors"], "checkpoint 'missing.pt' does not exist"),
])
def test_bad_input_is_one_line_no_traceback(tmp_path, args, needle):
    _one_clear_error(run(*args, cwd=tmp_path), needle)


def test_corrupted_source_file_is_named(tmp_path):
    bad = tmp_path / "src.safetensors"
    bad.write_bytes(b"garbage" * 10)
    _one_clear_error(run("sample", "--source", str(bad), "--out", "g.png", cwd=tmp_path), str(bad))


def test_import_gan_stability_checkpoint(tmp_path):
    cfg = NetConfig(resolution=64, nf=2, z_dim=256, embed_dim=1, nlabels=1, output="tanh")
    G, G_ema, D = Generator(cfg), Generator(cfg), Discriminator(cfg)
    ckpt = {"generator": {f"module.{k}": v for k, v in G.state_dict().items()},
            "generator_test": {f"module.{k}": v for k, v in G_ema.state_dict().items()},
            "discriminator": {f"module.{k}": v for k, v in D.state_dict().items()},
            "it": 42}
    torch.save(ckpt, tmp_path / "model.pt")
    proc = run("import-gan-stability", str(tmp_path / "model.pt"), "--out", str(tmp_path / "s.safetensors"))
    assert proc.returncode == 0, proc.stderr
    src = Source.load(tmp_path / "s.safetensors")
    assert src.cfg == cfg
    for k, v in G_ema.state_dict().items():  # the EMA generator is preferred
        assert torch.equal(src.G.state_dict()[k], v)
    for k, v in D.state_dict().items():
        assert torch.equal(src.D.state_dict()[k], v)
    z = torch.randn(2, 256)
    assert torch.equal(src.G(z), G_ema(z))


def test_import_rejects_a_non_resnet4_checkpoint(tmp_path):
    torch.save({"generator": {"w": torch.zeros(1)}, "discriminator": {}}, tmp_path / "m.pt")
    _one_clear_error(run("import-gan-stability", "m.pt", "--out", "s.safetensors", cwd=tmp_path),
                     "not a GP-GAN resnet4 generator")


def test_help_shows_examples():
    proc = run("pretrain", "--help")
    assert proc.returncode == 0 and "examples:" in proc.stdout and "--r1" in proc.stdout


def test_every_help_page_prints():
    from ganmemory.cli import build_parser
    commands = build_parser()._subparsers._group_actions[0].choices
    top = run("--help")
    assert top.returncode == 0 and top.stderr == "", top.stderr
    for name in commands:
        assert name in top.stdout
        proc = run(name, "--help")
        assert proc.returncode == 0 and proc.stderr == "", f"{name} --help: {proc.stderr}"


def test_learn_gives_a_conditional_task_the_presets_r1_unless_told():
    from ganmemory.cli import build_parser
    from ganmemory.cli.parser import _train_cfg

    def r1(*argv, conditional):
        a = build_parser().parse_args(["learn", "--memory", "m", "--task", "t", "--data", "d", *argv])
        return _train_cfg(a, conditional=conditional).r1_gamma

    assert r1(conditional=False) == 1.0 and r1(conditional=True) == 10.0
    assert r1("--r1", "2", conditional=True) == 2.0 and r1("--r1", "2", conditional=False) == 2.0
    assert r1("--preset", "paper", conditional=False) == 10.0 == r1("--preset", "paper", conditional=True)
    assert "10 for a --conditional task" in " ".join(run("learn", "--help").stdout.split())
    a = build_parser().parse_args(["learn", "--memory", "m", "--task", "t", "--data", "d", "--mode-seeking", "0.25"])
    assert _train_cfg(a, conditional=True).mode_seeking == 0.25
    a = build_parser().parse_args(["learn", "--memory", "m", "--task", "t", "--data", "d"])
    assert _train_cfg(a, conditional=True).mode_seeking == 0.1 and _train_cfg(a, conditional=False).mode_seeking == 0
    assert "0.1 for a --conditional task" in " ".join(run("learn", "--help").stdout.split())


@pytest.fixture
def cli_bank(tmp_path, tiny_source, image_folder):
    bank = tmp_path / "bank"
    assert run("init", "--source", str(tiny_source), "--out", str(bank)).returncode == 0
    proc = run("learn", "--memory", str(bank), "--task", "a", "--data", image_folder["a"], "--iters", "2",
               "--batch", "4", "--sample-every", "0")
    assert proc.returncode == 0, proc.stderr
    return bank


def test_bank_commands_end_to_end(tmp_path, cli_bank, image_folder):
    bank = cli_bank
    proc = run("learn", "--memory", str(bank), "--task", "b", "--data", image_folder["b"], "--iters", "2",
               "--batch", "4", "--sample-every", "0")
    assert proc.returncode == 0, proc.stderr
    out = run("list", "--memory", str(bank)).stdout
    assert "a " in out and "b " in out and "% of G" in out
    assert run("sample", "--memory", str(bank), "--task", "a", "-n", "4", "--out", str(tmp_path / "a.png")).returncode == 0
    assert (tmp_path / "a.png").exists()
    assert run("interpolate", "--memory", str(bank), "--from", "a", "--to", "b", "--steps", "3",
               "--out", str(tmp_path / "s.png")).returncode == 0
    assert run("remove", "--memory", str(bank), "--task", "b").returncode == 0
    assert "b " not in run("list", "--memory", str(bank)).stdout.split("-\n", 1)[1]


@pytest.mark.parametrize("args,needle", [
    (["sample", "--memory", "{bank}", "--task", "nope", "--out", "x.png"], "unknown task 'nope'"),
    (["learn", "--memory", "{bank}", "--task", "a", "--data", "{data}"], "task 'a' already exists"),
    (["learn", "--memory", "{bank}", "--task", "bad/name", "--data", "{data}"], "task name 'bad/name' is not allowed"),
    (["learn", "--memory", "{bank}", "--task", "c", "--data", "{data}", "--resume"], "has no unfinished learn"),
    (["list", "--memory", "not_a_bank"], "'not_a_bank' is not a memory bank"),
    (["init", "--out", "{bank}"], "is already a memory bank"),
])
def test_bank_errors_are_one_line(tmp_path, cli_bank, image_folder, args, needle):
    args = [a.format(bank=cli_bank, data=image_folder["b"]) for a in args]
    _one_clear_error(run(*args, cwd=tmp_path), needle)


@pytest.mark.slow
def test_list_shows_the_task_cost_at_256px_nf64(tmp_path):
    cfg = NetConfig(resolution=256, nf=64, output="tanh")
    Source(cfg, Generator(cfg), Discriminator(cfg)).save(tmp_path / "s.safetensors", dtype=torch.float16)
    assert run("init", "--source", str(tmp_path / "s.safetensors"), "--out", str(tmp_path / "b")).returncode == 0
    out = run("list", "--memory", str(tmp_path / "b")).stdout
    assert "generator 52,161,732 parameters; each task trains 10,549,248 of them (20.2 % of G)" in out


def test_lifelong_cli_writes_results_and_a_conditional_sample(tmp_path, tiny_source):
    out = tmp_path / "ll"
    proc = run("lifelong", "--tasks", "mnist:0,1;mnist:2,3", "--strategy", "gan-memory", "--iters", "2",
               "--batch", "4", "--gan-iters", "2", "--gan-batch", "4", "--replay-pool", "8",
               "--source", str(tiny_source), "--resolution", "16", "--replay-current", "0.25", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "final average accuracy" in proc.stdout
    assert json.loads((out / "results.json").read_text())["config"]["replay_current"] == 0.25
    for f in ("results.json", "table.md", "accuracy.png"):
        assert (out / f).exists()
    proc = run("sample", "--memory", str(out / "memory"), "--task", "t1-mnist-2-3", "--class", "3", "-n", "4",
               "--out", str(tmp_path / "threes.png"))
    assert proc.returncode == 0 and "wrote 4 samples" in proc.stdout, proc.stderr
    _one_clear_error(run("sample", "--memory", str(out / "memory"), "--task", "t1-mnist-2-3", "--class", "7",
                         "--out", str(tmp_path / "x.png")), "has no class '7'")


def test_learn_lowrank_and_its_options(tmp_path, cli_bank, image_folder):
    proc = run("learn", "--memory", str(cli_bank), "--task", "low", "--data", image_folder["b"], "--iters", "2",
               "--batch", "4", "--sample-every", "0", "--lowrank", "--lowrank-energy", "0.95")
    assert proc.returncode == 0, proc.stderr
    listing = run("list", "--memory", str(cli_bank)).stdout
    assert "lowrank-trained, energy 0.95" in listing
    assert run("sample", "--memory", str(cli_bank), "--task", "low", "-n", "4", "--out",
               str(tmp_path / "low.png")).returncode == 0
    _one_clear_error(run("learn", "--memory", str(cli_bank), "--task", "x", "--data", image_folder["b"],
                         "--lowrank-energy", "0.8"), "--lowrank-energy and --lowrank-init need --lowrank")
    _one_clear_error(run("learn", "--memory", str(cli_bank), "--task", "x", "--data", image_folder["b"],
                         "--lowrank", "--lowrank-energy", "1.5"), "--lowrank-energy must be in (0, 1]")


def test_a_diverging_learn_is_one_clear_error_and_keeps_the_bank(cli_bank, image_folder):
    # an absurd learning rate overflows the task's weights within a few steps: a real divergence
    before = (cli_bank / "tasks" / "a.safetensors").read_bytes()
    proc = run("learn", "--memory", str(cli_bank), "--task", "b", "--data", image_folder["b"], "--iters", "20",
               "--batch", "4", "--sample-every", "0", "--lr", "1e30")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr  # above the error: the progress bar
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("ganmemory learn: error: learning task 'b' diverged at iteration") and \
        "nothing was stored" in error and "this run: 1e+30" in error and proc.stderr.count("error") == 1
    assert "b " not in run("list", "--memory", str(cli_bank)).stdout.split("-\n", 1)[1]
    assert (cli_bank / "tasks" / "a.safetensors").read_bytes() == before
