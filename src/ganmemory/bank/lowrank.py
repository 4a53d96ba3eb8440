"""Low rank in the bank: compressing stored tasks, and storing tasks learned with ``--lowrank``
as coefficients over the bank's trained bases (docs/method.md, section 4; the matrix algebra is
in ``ganmemory.compress``)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from ..compress import (CHANGE, MATRIX, PER_TASK, SDIAG_SUFFIX, SHARED, TRAINED, TRAINED_U, TRAINED_V,
                        LowRankConfig, budget_floor, check_of, compress_shared, compress_state, expand_state,
                        fold_residual, smallest_budget, stored_parameters)
from ..errors import GanMemoryError
from ..locks import BASES_LOCK, locked
from ..nets import Generator
from ..nets.modulated import LowRankDelta, ModulatedConv2d, lowrank_key
from ..store import load_artifact, prefixed, unprefixed
from ..taskfile import TASK_FORMAT, task_layout, write_task_file
from ..train.losses import singular_value_penalty
from .disk import BankDisk


def task_scores(bank: BankDisk, loaded: dict[str, tuple], n: int, scorers: dict, when: str,
                log: Callable[[str], None]) -> tuple[dict, dict[str, float]]:
    """FD-EL0 of each task of ``bank`` against its training data (scorers reused by name)."""
    from ..evaluate import Scorer, evaluate_task
    scores = {}
    for name, (_, meta) in loaded.items() if n else ():
        log(f"scoring '{name}' {when} compression ({n} images)...")
        if name not in scorers:
            scorers[name] = Scorer(meta["data"], bank.cfg.resolution, "fd-el0", n)
        scores[name] = evaluate_task(bank, name, meta["data"], scorer=scorers[name])["value"]
    return scorers, scores


DRIFT_N = 256  # latents whose images measure how far compression moves a task back to its source


class LowRankStore(BankDisk):
    """Tasks stored in low-rank form, and the factorised generator a ``--lowrank`` learn trains."""

    def compress(self, names: Sequence[str] | None, energy: float | None, dtype: torch.dtype,
                 out: "BankDisk | None" = None, shared: bool = False, eval_n: int = 0,
                 log: Callable[[str], None] = print, of: str = CHANGE, budget: float | None = None,
                 max_loss: float | None = None) -> list[dict[str, Any]]:
        """Store tasks in low-rank form (``compress.py``), into ``out`` (another bank over the
        same source) or, when ``out`` is None, in place. Returns one report row per task.

        How much each task keeps: ``energy`` of every matrix's sum(s^2), or (per-task mode only)
        ``budget``, a fraction of the generator's parameters that each task may take, spread over
        its matrices by ``compress.budget_ranks``, or (per-task, scored) the smallest such budget
        at which the task loses at most ``max_loss`` (a fraction: 0.1 is 10 %) of its FD-EL0 and
        of its images' way from the source's (``_budget_for_loss``), searched by
        ``compress.smallest_budget``; the rows then carry each task's ``budget``.

        ``shared``: the tasks, in the order given, grow bases shared by the target bank
        (BANK/bases.safetensors) and each keeps only its cores; a task's row counts the
        columns it added. Otherwise each matrix gets its own truncated SVD.

        ``of``: what is factorised, each matrix's change from the task's start (``CHANGE``) or
        the matrix itself (``MATRIX``). A bank's shared bases hold one or the other.

        With ``eval_n`` > 0 each task is scored with FD-EL0 (``eval_n`` images against its own
        training data) before and after; the rows then carry ``fd_el0_before`` and ``fd_el0_after``.

        Every task is checked and the target's locks are taken before anything is written."""
        if sum(x is not None for x in (energy, budget, max_loss)) != 1:
            raise GanMemoryError("compress takes one of an energy, a budget or a largest loss")
        if max_loss is not None:
            if not 0 < max_loss < float("inf"):
                raise GanMemoryError(f"--max-loss must be above 0 %, got {100 * max_loss:g}")
            if shared:
                raise GanMemoryError("--max-loss applies to per-task compression; shared bases take --energy")
            if not eval_n:
                raise GanMemoryError("--max-loss scores each task's FD-EL0 while it searches: it cannot run with "
                                     "--no-eval")
        if energy is not None and not 0 < energy <= 1:
            raise GanMemoryError(f"--energy must be in (0, 1], got {energy}")
        if budget is not None and not 0 < budget <= 1:
            raise GanMemoryError(f"--budget must be in (0, 100] % of the generator, got {100 * budget:g}")
        if budget is not None and shared:
            raise GanMemoryError("--budget applies to per-task compression; shared bases take --energy")
        check_of(of)
        names = list(names) if names else self.tasks()
        target = out or self
        if target.source.file_hash != self.source.file_hash:
            raise GanMemoryError(f"bank '{target.root}' has another source; cannot hold these tasks")
        if shared:
            bases, bases_meta = target._bases_artifact()
            held = bases_meta.get("of", MATRIX) if any(k.endswith(".basis_u") for k in bases) else of
            if held != of:
                raise GanMemoryError(f"bank '{target.root}' holds shared bases of each task's {held}, not of its "
                                     f"{of}: compress with --of {held}, or into another bank")
        loaded = {}
        for name in names:
            tensors, meta = self.load_task(name)
            if meta.get("compressed"):
                raise GanMemoryError(f"task '{name}' is already compressed")
            if out is not None and target._task_path(name).exists():
                raise GanMemoryError(f"task '{name}' already exists in bank '{target.root}'")
            loaded[name] = (tensors, meta)
        n_g = self.generator_param_count()[1]
        allowed = None if budget is None else int(budget * n_g)
        for name, (tensors, _) in loaded.items() if allowed is not None else ():
            least = budget_floor(unprefixed("G", tensors))
            if least > allowed:
                raise GanMemoryError(f"task '{name}' takes at least {least:,} parameters in low-rank form "
                                     f"({100 * least / n_g:.2f} % of the generator): --budget {100 * budget:g} "
                                     "is below that")
        scorers, before = task_scores(self, loaded, eval_n, {}, "before", log)
        rows = []
        with locked(target.root, names + ([BASES_LOCK] if shared else []), "compress"):
            for name, (tensors, meta) in loaded.items():
                task_budget = budget if max_loss is None else self._budget_for_loss(
                    name, tensors, meta, dtype, of, n_g, scorers[name], before[name], max_loss, log)
                rows.append(self._compress_one(name, tensors, meta, energy, dtype, target, shared, n_g, of,
                                               task_budget))
                if max_loss is not None:
                    rows[-1]["budget"] = task_budget
        _, after = task_scores(target, loaded, eval_n, scorers, "after", log)
        for row in rows if eval_n else ():
            row.update(fd_el0_before=before[row["task"]], fd_el0_after=after[row["task"]])
        return rows

    def _budget_for_loss(self, name: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                         dtype: torch.dtype, of: str, n_g: int, scorer: Any, before: float, max_loss: float,
                         log: Callable[[str], None]) -> float:
        """The smallest budget (a fraction of G's parameters) at which task ``name``, compressed
        as ``_compress_one`` would, loses at most ``max_loss`` by two measures:

        - drift: its images from ``DRIFT_N`` latents move back towards the source's from the
          same latents by at most ``max_loss`` of the way the task moved them (RMS over pixels);
        - FD-EL0 with ``scorer``, on the latents of the "before" score: at most
          ``before * (1 + max_loss)``.

        FD-EL0 alone is blind where a task moved little from its source in that score: such a
        task compressed back to almost the source scores almost the same. The drift is checked
        first (it is cheap); the FD-EL0 score only where the drift passes."""
        from ..evaluate import task_sampler
        from ..source import latents
        full = unprefixed("G", tensors)
        layout = task_layout(meta)
        starts = self.task_start(meta["n_classes"], layout)
        offsets = starts if of == CHANGE else None  # what compress_state factorises each matrix against
        G = self._modulated_generator(meta["n_classes"], layout)
        sample = task_sampler(G, meta["n_classes"])
        z = latents(DRIFT_N, self.cfg.z_dim, 0)

        def images() -> torch.Tensor:
            with torch.no_grad():
                return torch.cat([sample(z[i:i + 100]) for i in range(0, DRIFT_N, 100)])

        G.load_task_state(starts)
        source_x = images()
        G.load_task_state(full)
        task_x = images()
        moved = float((source_x - task_x).pow(2).mean().sqrt())
        del source_x

        def acceptable(params: int) -> bool:
            G.load_task_state(expand_state(compress_state(full, None, dtype, offsets, budget=params), offsets))
            drift = float((images() - task_x).pow(2).mean().sqrt())
            what = f"'{name}' at {100 * params / n_g:.2f} % of G: drift {drift / max(moved, 1e-12):.3f} of the way"
            if drift > max_loss * moved:
                log(what)
                return False
            fd = scorer.score(sample, self.cfg.z_dim)["value"]
            log(f"{what}, FD-EL0 {before:.2f} -> {fd:.2f} ({100 * (fd / before - 1):+.1f} %)")
            return fd <= before * (1 + max_loss)

        params = smallest_budget(budget_floor(full), stored_parameters(full), acceptable)
        return (params + 0.5) / n_g  # int(budget * n_g) in _compress_one gives params back

    def _compress_one(self, name: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any], energy: float | None,
                      dtype: torch.dtype, target: BankDisk, shared: bool, n_g: int, of: str,
                      budget: float | None) -> dict[str, Any]:
        before_bytes = self._task_path(name).stat().st_size
        full = unprefixed("G", tensors)
        starts = self.task_start(meta["n_classes"], task_layout(meta)) if of == CHANGE else None
        added = 0
        if shared:
            small, bases, added = compress_shared(full, target.shared_bases(), energy, dtype, starts)
        else:
            small = compress_state(full, energy, dtype, starts, budget=None if budget is None else int(budget * n_g))
        new_meta = {k: v for k, v in meta.items() if k not in ("optimizer", "tensor_hash")}
        kept = {"energy": energy} if budget is None else {"budget": budget}
        new_meta.update({"compressed": {"mode": SHARED if shared else PER_TASK, "of": of, **kept,
                                        "dtype": str(dtype).replace("torch.", ""),
                                        "parameters_before": stored_parameters(full),
                                        "basis_parameters_added": added},
                         "task_parameters": stored_parameters(small) + added})
        if shared:  # the grown bases first: they stay valid for every task already stored
            target._save_bases(bases, energy=energy, of=of)
        path = target._task_path(name)
        write_task_file(path, prefixed("G", small), new_meta)
        return {"task": name, "parameters_before": stored_parameters(full),
                "parameters_after": stored_parameters(small) + added, "generator_parameters": n_g,
                "bytes_before": before_bytes, "bytes_after": path.stat().st_size}

    def _factorise(self, G: Generator, lowrank: LowRankConfig) -> dict[str, LowRankDelta]:
        """Turn G's conv gamma / beta into start + U diag(s) V^T + R over the bank's trained
        bases; s starts at 0 (``init`` "source") or at the last low-rank task's coefficients
        ("previous")."""
        bases, bases_meta = self._bases_artifact()
        prev: dict[str, torch.Tensor] = {}
        last = bases_meta.get("lowrank_last")
        if lowrank.init == "previous" and last and self._task_path(last).exists():
            prev = unprefixed("G", load_artifact(self._task_path(last), TASK_FORMAT)[0])
        factors = {}
        for mname, mod in G.named_modules():
            if not isinstance(mod, ModulatedConv2d):
                continue
            for pname in ("gamma", "beta"):
                key = f"{mname}.{pname}"
                co, ci = getattr(mod, pname).shape
                u = bases.get(key + TRAINED_U, torch.zeros(co, 0))  # float32 [Co, K]
                v = bases.get(key + TRAINED_V, torch.zeros(ci, 0))  # float32 [Ci, K]
                s0 = torch.zeros(u.shape[1])
                old = prev.get(key + SDIAG_SUFFIX)
                if old is not None:
                    s0[: len(old)] = old.float()[: u.shape[1]]
                mod.factorise(pname, u, v, s0)
                factors[key] = mod.factors(pname)
        G.freeze_source()
        return factors

    def _write_lowrank_task(self, name: str, G_ema: Generator, basis_k: dict[str, int], lowrank: LowRankConfig,
                            meta: dict[str, Any]) -> dict[str, Any]:
        """Fold each factorised matrix's residual into the bank's bases (written first: the
        columns only grow, so every stored task stays valid) and store the coefficients.
        Returns the stored metadata."""
        bases = self.shared_bases()
        now = {key: bases[key + TRAINED_U].shape[1] if key + TRAINED_U in bases else 0 for key in basis_k}
        if now != basis_k:
            raise GanMemoryError(f"task '{name}' cannot be stored: the bank's trained bases grew while it was "
                                 "learned (another --lowrank task finished); learn it again")
        factors = {n: m for n, m in G_ema.named_modules() if isinstance(m, LowRankDelta)}
        small, added = {}, 0
        for pname, p in G_ema.task_state_dict().items():
            owner, _, leaf = pname.rpartition(".")
            if owner in factors:
                if leaf != "s":
                    continue
                key = lowrank_key(owner)
                f = factors[owner]
                u_new, v_new, coeffs = fold_residual(f.u, f.v, f.s.detach(), f.r.detach(), lowrank.energy)
                # float32 columns, as training used them; the stored prefix is kept bit for bit
                for suffix, old, new in ((TRAINED_U, f.u, u_new), (TRAINED_V, f.v, v_new)):
                    bases[key + suffix] = torch.cat([bases.get(key + suffix, old.float()), new.float()], 1)
                added += u_new.numel() + v_new.numel()
                small[key + SDIAG_SUFFIX] = coeffs.float()
            else:
                small[pname] = p.detach().clone()
        full = meta["task_parameters"]
        meta = {**meta, "lowrank": lowrank.to_dict(),
                "compressed": {"mode": TRAINED, "energy": lowrank.energy, "dtype": "float32",
                               "parameters_before": full, "basis_parameters_added": added},
                "task_parameters": stored_parameters(small) + added}
        self._save_bases(bases, lowrank_last=name)
        return write_task_file(self._task_path(name), prefixed("G", small), meta)


def lowrank_regulariser(lowrank: LowRankConfig, coeffs: list[torch.Tensor]) -> Callable[[int], torch.Tensor | None]:
    """The generator's extra loss under ``--lowrank``: the weighted singular-value penalty on
    the trained coefficients ``coeffs``, on every ``penalty_every``-th step (docs/method.md, section 4)."""
    def regulariser(it: int) -> torch.Tensor | None:
        if lowrank.penalty == 0 or it % lowrank.penalty_every or not coeffs:
            return None
        return lowrank.penalty * sum(singular_value_penalty(s) for s in coeffs)
    return regulariser
