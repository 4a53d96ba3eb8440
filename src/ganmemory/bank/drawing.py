"""Drawing from a bank's tasks: samples, samples of named classes, every task in one grouped
pass, and interpolation between two tasks."""

from __future__ import annotations

from typing import Sequence

import torch

from ..errors import GanMemoryError
from ..source import generate, latents
from ..store import unprefixed
from .disk import BankDisk


class Drawing(BankDisk):
    """Sampling and interpolation; every draw is a pure function of the stored tasks and the seed."""

    def class_indices(self, name: str, classes: Sequence[str] | None, n: int) -> torch.Tensor | None:
        """The generator labels for ``n`` samples of task ``name``: None for an unconditional
        task; for a conditional one, ``classes`` (names, each repeated n times, in order) or,
        when None, every class of the task in turn (i % n_classes)."""
        meta = self.task_meta(name)
        if not meta.get("n_classes"):
            if classes:
                raise GanMemoryError(f"task '{name}' is not class-conditional; it cannot sample --class")
            return None
        known = list(meta["classes"])
        if classes is None:
            return torch.arange(n) % len(known)
        idx = []
        for c in classes:
            if c not in known:
                raise GanMemoryError(f"task '{name}' has no class '{c}'; its classes: {', '.join(known)}")
            idx.append(known.index(c))
        return torch.tensor(idx).repeat_interleave(n)

    def sample(self, tasks: str | Sequence[str], n: int, seed: int = 0, classes: Sequence[str] | None = None,
               batched: bool = False) -> torch.Tensor:
        """``n`` images per task, [len(tasks) * n, 3, R, R] in [-1, 1], tasks in the order given.

        Every task uses the same latents (those of ``seed``), so each task's block equals a
        single-task call with that seed. A conditional task draws its classes in turn, or
        ``classes`` (names; then ``n`` per class: [len(tasks) * len(classes) * n, ...]).
        ``batched`` runs all tasks in one grouped pass (``sample_batched``, equal within float
        rounding); on this project's 2-core CPU that was slower than the loop (BENCHMARKS.md),
        so the loop is the default.
        """
        names = [tasks] if isinstance(tasks, str) else list(tasks)
        if not names:
            raise GanMemoryError("no task given to sample from")
        if classes is not None:
            return self.sample_pairs([(t, c) for t in names for c in classes], n, seed)
        z = latents(n, self.cfg.z_dim, seed)
        ys = [self.class_indices(t, None, n) for t in names]
        # one grouped pass needs task states of one shape: the same number of classes and layout
        if batched and len(names) > 1 and len({self._kind(t) for t in names}) == 1:
            return self.sample_batched(names, z, ys[0])
        return torch.cat([generate(self.task_generator(t), z, y) for t, y in zip(names, ys)])

    def sample_pairs(self, pairs: Sequence[tuple[str, str]], n: int, seed: int = 0) -> torch.Tensor:
        """``n`` images for each (task, class name) pair of conditional tasks, in the order
        given: [len(pairs) * n, 3, R, R]. Every pair uses the latents of ``seed``; the pairs of
        one task are drawn in one forward pass, batched over their classes."""
        if not pairs:
            raise GanMemoryError("no (task, class) pair given to sample from")
        z = latents(n, self.cfg.z_dim, seed)
        blocks: dict[int, torch.Tensor] = {}
        by_task: dict[str, list[int]] = {}
        for i, (t, _) in enumerate(pairs):
            by_task.setdefault(t, []).append(i)
        for t, rows in by_task.items():
            y = self.class_indices(t, [pairs[i][1] for i in rows], n)
            if y is None:
                raise GanMemoryError(f"task '{t}' is not class-conditional; it cannot sample a class")
            x = generate(self.task_generator(t), z.repeat(len(rows), 1), y)  # [len(rows) * n, 3, R, R]
            for k, i in enumerate(rows):
                blocks[i] = x[k * n:(k + 1) * n]
        return torch.cat([blocks[i] for i in range(len(pairs))])

    @torch.no_grad()
    def sample_batched(self, names: Sequence[str], z: torch.Tensor, y: torch.Tensor | None = None,
                       chunk: int = 256) -> torch.Tensor:
        """Every task in one forward pass: the task states are stacked and each modulated layer
        runs one grouped convolution over all tasks (see ``nets.modulated``). Returns
        [T * n, 3, R, R], task-major like the loop; equal to it up to float rounding."""
        states = [unprefixed("G", self.load_task(t)[0]) for t in names]
        stacked = {k: torch.stack([s[k] for s in states]) for k in states[0]}
        G = self._modulated_generator(*self._kind(names[0]))
        t = len(names)
        outs = []
        for i in range(0, len(z), chunk):
            zc = z[i:i + chunk]
            yc = None if y is None else y[i:i + chunk].repeat_interleave(t)
            x = torch.func.functional_call(G, stacked, (zc.repeat_interleave(t, 0), yc))  # [c * T, 3, R, R]
            outs.append(x.reshape(len(zc), t, *x.shape[1:]).transpose(0, 1))  # [T, c, 3, R, R]
        return torch.cat(outs, 1).reshape(t * len(z), *outs[0].shape[2:]).clamp(-1, 1)

    def interpolate(self, a: str, b: str, steps: int = 8, n: int = 4, seed: int = 0, mode: str = "whole"
                    ) -> torch.Tensor:
        """Images along the path from task ``a`` to task ``b``: [n * steps, 3, R, R], row-major
        (one row per latent, one column per step).

        ``whole``: every parameter moves together, theta = (1 - t) theta_a + t theta_b.
        ``blocks``: the Linear, then each block in turn, then the output layers move from a to b,
        as the paper shows.
        Between conditional tasks (same class count) row i draws class index i % n_classes of
        both, as ``sample`` does.
        """
        if mode not in ("whole", "blocks"):
            raise GanMemoryError(f"interpolation mode '{mode}' is unknown: use whole or blocks")
        if steps < 2:
            raise GanMemoryError(f"--steps must be >= 2, got {steps}")
        ta = unprefixed("G", self.load_task(a)[0])
        tb = unprefixed("G", self.load_task(b)[0])
        if set(ta) != set(tb) or any(ta[k].shape != tb[k].shape for k in ta):
            raise GanMemoryError(f"tasks '{a}' and '{b}' have different parameters (other class counts "
                                 "or other task layouts); cannot interpolate between them")
        G = self._modulated_generator(*self._kind(a))
        # the class bias moves with the Linear it shifts; an owned output conv and colour come last
        group_of = {"class_bias": "fc", "conv_img": "output", "colour": "output"}
        groups = ["fc"] + [f"resnet_{i}_0" for i in range(self.cfg.n_blocks)]
        if any(group_of.get(key.split(".")[0]) == "output" for key in ta):
            groups.append("output")
        z = latents(n, self.cfg.z_dim, seed)
        y = self.class_indices(a, None, n)  # None for unconditional tasks
        cols = []
        for s in range(steps):
            t = s / (steps - 1)
            state = {}
            for key in ta:
                if mode == "whole":
                    w = t
                else:
                    head = key.split(".")[0]
                    g = groups.index(group_of.get(head, head))
                    w = min(1.0, max(0.0, t * len(groups) - g))
                state[key] = torch.lerp(ta[key], tb[key], w)
            G.load_task_state(state)
            cols.append(generate(G, z, y))
        return torch.stack(cols, 1).reshape(n * steps, *cols[0].shape[1:])
