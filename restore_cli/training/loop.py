"""One optimisation step at a time, as the paper trains: L1 loss, AdamW, gradient clipping,
the warm-up + cosine schedule, and optionally an exponential moving average of the weights.

`Trainer` holds everything the next step depends on (weights, optimiser moments, schedule
position, average, random generator, iteration) and can hand it over as a state dict and
take it back, which is what makes a resumed run equal to an uninterrupted one.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from restore_cli.engine.device import autocast_context
from restore_cli.quality import metrics
from restore_cli.training.control import Cancelled
from restore_cli.training.schedule import WarmupCosine

BETAS = (0.9, 0.999)
WEIGHT_DECAY = 1e-4
"""AdamW as in the paper."""
FULL_SIZE_PARAMETERS = 10_000_000


class Reporter(Protocol):
    """Where a run tells how it goes: the CLI's progress bar and JSON lines, or a notebook.

    A reporter may also have ``estimated(pace: Pace)``, told the run's first estimate of its
    speed from the first step's forward pass (so a slow run says how slow before its first
    step is over), and ``stopping()``, told at once that Ctrl-C was pressed and the run stops
    after the step in progress; one without them is not told."""

    def started(self, iteration: int, total: int) -> None: ...

    def stepped(self, iteration: int, loss: float, lr: float) -> None: ...

    def validated(self, iteration: int, score: metrics.Score) -> None: ...

    def saved(self, iteration: int) -> None: ...


class Pace:
    """How long the run will take, from its first forward pass, for the first estimate of
    speed and time left (a step's backward pass and update take about twice its forward)."""

    STEP_PER_FORWARD = 3.0

    def __init__(self, forward_seconds: float, steps_left: int, on_cpu: bool, parameters: int) -> None:
        self.seconds_per_step = forward_seconds * self.STEP_PER_FORWARD
        self.steps_left = steps_left
        self.on_cpu = on_cpu
        self.parameters = parameters

    @property
    def seconds_left(self) -> float:
        return self.seconds_per_step * self.steps_left

    @property
    def full_size_on_cpu(self) -> bool:
        """The paper's network (26 M parameters; `small` has 3.8 M) trained on a CPU: days
        for a run of the default length, which deserves a warning."""
        return self.on_cpu and self.parameters >= FULL_SIZE_PARAMETERS


class Trainer:
    """A model under training and the optimiser, schedule, average and generator that
    decide its next step."""

    def __init__(
        self,
        model: nn.Module,
        device: torch.device,
        dtype: torch.dtype,
        *,
        lr: float,
        iterations: int,
        warmup: int,
        clip: float,
        ema_decay: float,
        seed: int,
    ) -> None:
        self.device = device
        self.dtype = dtype
        self.model = model.to(device).train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr, betas=BETAS, weight_decay=WEIGHT_DECAY)
        self.scheduler = WarmupCosine(self.optimizer, iterations, warmup)
        self.clip = clip
        self.ema_decay = ema_decay
        self.ema = copy.deepcopy(self.model).requires_grad_(False) if ema_decay > 0 else None
        self.generator = torch.Generator().manual_seed(seed)
        self.scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
        self.iteration = 0
        self._committing = threading.Lock()
        self._generator_state = self.generator.get_state()
        """The generator as the last committed step left it; batches for the next step are
        drawn from it before that step commits (or is abandoned)."""

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def step(
        self,
        degraded: torch.Tensor,
        clean: torch.Tensor,
        *,
        cancelled: threading.Event | None = None,
        on_forward: Callable[[float], None] | None = None,
    ) -> tuple[float, float]:
        """One update on an NCHW batch; returns its L1 loss and the learning rate it used.
        ``on_forward`` gets the forward pass's seconds. If ``cancelled`` is set before the
        update begins, the step raises `Cancelled` having changed nothing (gradients aside).
        NCHW, not channels-last: the channels-last formulation that speeds up inference made
        a training step slower (forward + backward of `tiny` on 8 x 64^2 crops, 1 CPU
        thread: 2.5 s vs 3.2 s)."""
        started = time.perf_counter()
        degraded, clean = degraded.to(self.device), clean.to(self.device)
        lr = self.lr
        with autocast_context(self.device, self.dtype):
            restored = self.model(degraded)
        loss = F.l1_loss(restored.float(), clean)
        if on_forward is not None:
            on_forward(time.perf_counter() - started)
        self.optimizer.zero_grad(set_to_none=True)
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()
        with self._committing:
            if cancelled is not None and cancelled.is_set():
                raise Cancelled
            self._update()
        return float(loss.detach()), lr

    def _update(self) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
            self._clip()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self._clip()
            self.optimizer.step()
        self.scheduler.step()
        self._update_average()
        self.iteration += 1
        self._generator_state = self.generator.get_state()

    def _clip(self) -> None:
        if self.clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)

    @torch.no_grad()
    def _update_average(self) -> None:
        if self.ema is not None:
            torch._foreach_lerp_(list(self.ema.parameters()), list(self.model.parameters()), 1.0 - self.ema_decay)

    @property
    def inference_model(self) -> nn.Module:
        """The weights a checkpoint's loader would run: the average when one is kept."""
        return self.ema if self.ema is not None else self.model

    def state_dict(self) -> dict[str, Any]:
        """Everything as the last committed step left it, even while another step is
        computing (its batch already drawn): what a resumed run continues from."""
        with self._committing:
            return {
                "iteration": self.iteration,
                "model": self.model.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "generator": self._generator_state,
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration = int(state["iteration"])
        self.model.load_state_dict(state["model"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        self._generator_state = self.generator.get_state()
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
