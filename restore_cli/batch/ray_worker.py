"""One Ray worker: an actor that builds the model once and runs `Pipeline.process_one` per call.

Each worker plans its tiles within its share of its node's memory (`worker_memory_budget`), so
the workers placed on one node do not together run it out. An image whose worker was killed for
memory comes back with ``halvings`` > 0 and runs with half the working memory each time
(`retry_budget`, `retry_tile`), down to what the engine's smallest tile needs; its result
records the budget it ran with. A cancelled batch (`cancel`, on its own concurrency group so it
runs while an image is being restored) stops images at their next tile and starts no new one;
a write in progress always finishes, so outputs stay whole.
"""

from __future__ import annotations

import io
import math
import threading
from dataclasses import replace

import psutil
import ray
from ray.exceptions import OutOfMemoryError, RayError

from restore_cli.batch.models import EngineSettings, Models, ModelSpec
from restore_cli.batch.pipeline import Pipeline, Result, describe_error
from restore_cli.batch.planning import Job
from restore_cli.batch.ray_protocol import Recipe
from restore_cli.engine.threads import worker_threads
from restore_cli.errors import install_spelling
from restore_cli.io import stores

CPU_BUDGET_FRACTION = 0.5
"""Share of the node's available memory that all the workers on it may plan for together, as
the local engine's default allows itself half of what is free (``engine.budget``)."""
SIZE_MULTIPLE = 8


def workers_on_node(total_workers: int, node_cpus: float, cpus_per_worker: float, node_gpus: float = 0.0, gpus_per_worker: float = 0.0) -> int:
    """How many of the batch's workers can be placed on a node of this size (at least 1)."""
    fit = math.floor(node_cpus / cpus_per_worker) if cpus_per_worker > 0 else total_workers
    if gpus_per_worker > 0:
        fit = min(fit, math.floor(node_gpus / gpus_per_worker))
    return max(1, min(total_workers, fit))


def worker_memory_budget(held: int, available: int, workers_here: int) -> int:
    """A worker's default memory budget (its --max-memory): what it holds already (the model)
    plus an equal share, among the workers its node can hold, of half the node's available
    memory. Ray's memory monitor kills workers when the node passes 95% of its memory; the
    workers of a node together stay at half of what was free."""
    return held + int(available * CPU_BUDGET_FRACTION / max(1, workers_here))


def retry_budget(budget: int, held: int, floor: int, halvings: int) -> int:
    """The budget after ``halvings`` kills for memory: the working memory above what the worker
    holds is halved each time (so is the largest tile's area), but never below ``floor``, what
    the engine's smallest tile needs."""
    return held + max((budget - held) >> halvings, floor)


def retry_tile(tile: int | str, halvings: int, smallest: int) -> int | str:
    """A fixed --tile after ``halvings`` kills for memory: half the area each time (the side
    over sqrt(2), to a multiple of 8), not below ``smallest``; "auto" plans within the smaller
    budget, and the whole image (0) becomes "auto"."""
    if tile == "auto" or tile == 0 or halvings == 0:
        return "auto" if tile == 0 and halvings else tile
    assert isinstance(tile, int)
    shrunk = math.isqrt(tile * tile >> halvings) // SIZE_MULTIPLE * SIZE_MULTIPLE
    return max(min(tile, smallest), shrunk)


class Cancelled(BaseException):
    """Raised between tiles of a cancelled batch; a BaseException so that the pipeline's stages,
    which turn every Exception into a result, let it through."""


class Worker:
    """The actor's class (made remote by the driver): the model built once, then one job per call."""

    def __init__(self, recipe: Recipe) -> None:
        import torch

        torch.set_num_threads(recipe.threads or worker_threads(recipe.cpus))  # a fraction of a CPU still needs a thread
        install_spelling(recipe.spelling)  # this process serves this batch alone
        stores.use_options(recipe.storage_options)
        self._recipe = recipe
        self._cancelled = threading.Event()
        self._networks: dict[ModelSpec, object] = {}
        self._models: dict[int, Models] = {}
        self._notices: list[str] = []
        self._problem: str | None = None
        self._budget, self._held, self._floor = 0, 0, 0
        try:
            self._network(recipe.choice.color)
            self._budget, self._held, self._floor = self._memory()
            self._models_for(0).get(recipe.choice.color)  # the engine too: a device it cannot use fails here
        except RayError:
            raise  # the weights lost with a node: a death, like any other, for the dispatcher
        except Exception as error:  # kept for ready(): one clear line, not an actor death
            self._problem = describe_error(error)
        self._pipeline = Pipeline(
            self._models_for(0),
            format=recipe.format,
            quality=recipe.quality,
            max_pixels=recipe.max_pixels,
            files=recipe.files,
            on_tiles=self._stop_if_cancelled,
            on_notice=self._notices.append,
        )

    def ready(self) -> str | None:
        """Answers once the model is built (None) or could not be (why, the same on every
        worker): the driver sends images only to workers that answered None."""
        return self._problem

    def process(self, job: Job, halvings: int = 0) -> Result | None:
        """The job's result, or None if the batch was cancelled before it finished."""
        if self._cancelled.is_set():
            return None
        if halvings == 0 and job.name in self._recipe.killed_for_memory_once:
            raise OutOfMemoryError(f"test hook: {job.name} killed for memory")
        self._pipeline.models = self._models_for(halvings)
        try:
            result = self._pipeline.process_one(job)
        except Cancelled:
            return None
        return replace(result, memory_budget=self.budget(halvings))

    @ray.method(concurrency_group="control")
    def cancel(self) -> None:
        self._cancelled.set()

    def notices(self) -> list[str]:
        """The run-level warnings of this worker's images (metadata a format could not hold)."""
        self._pipeline.warn_dropped_metadata()
        return self._notices

    def budget(self, halvings: int) -> int:
        return retry_budget(self._budget, self._held, self._floor, halvings)

    def _stop_if_cancelled(self, done: int, total: int) -> None:
        if self._cancelled.is_set():
            raise Cancelled

    def _network(self, spec: ModelSpec) -> object:
        if spec not in self._networks:
            import torch

            from restore_cli.engine.onnx_runtime import OnnxNetwork, is_onnx
            from restore_cli.model.checkpoints import build_model

            weights = self._recipe.weights[spec]
            if is_onnx(weights.source):
                self._networks[spec] = OnnxNetwork(ray.get(weights.data), self._recipe.settings.device, weights.source)
                return self._networks[spec]
            state = torch.load(io.BytesIO(ray.get(weights.data)), map_location="cpu", weights_only=True)
            self._networks[spec] = build_model(state, source=weights.source)
        return self._networks[spec]

    def _models_for(self, halvings: int) -> Models:
        if halvings not in self._models:
            settings = self._settings(halvings)
            self._models[halvings] = Models(self._recipe.choice, lambda spec: settings.wrap(spec, self._network(spec)))  # type: ignore[arg-type]
        return self._models[halvings]

    def _settings(self, halvings: int) -> EngineSettings:
        from restore_cli.engine.budget import MIN_AUTO_TILE

        settings = self._recipe.settings
        return replace(settings, max_memory=str(self.budget(halvings)), tile=retry_tile(settings.tile, halvings, MIN_AUTO_TILE))

    def _memory(self) -> tuple[int, int, int]:
        """(budget, held, floor): this worker's memory budget, what it holds with its model
        built, and the working memory the engine's smallest tile needs."""
        import torch

        from restore_cli.engine.budget import MEMORY_MODELS, MIN_AUTO_TILE, default_memory_budget, parse_memory_size
        from restore_cli.engine.device import resolve_device

        recipe = self._recipe
        device = resolve_device(recipe.settings.device)
        dim = self._network(recipe.choice.color).config.dim  # type: ignore[attr-defined]
        floor = MEMORY_MODELS[torch.float32].forward_bytes(dim, MIN_AUTO_TILE**2)
        if device.type == "cuda":
            held = torch.cuda.memory_allocated(device)
            default = int(default_memory_budget(device) * min(1.0, recipe.gpus))
        else:
            held = psutil.Process().memory_info().rss
            node = _this_node()
            here = workers_on_node(recipe.workers, node.get("CPU", 1.0), recipe.cpus, node.get("GPU", 0.0), recipe.gpus)
            default = worker_memory_budget(held, psutil.virtual_memory().available, here)
        given = recipe.settings.max_memory
        return (default if given is None else parse_memory_size(given)), held, floor


def _this_node() -> dict[str, float]:
    node_id = ray.get_runtime_context().get_node_id()
    return next((node["Resources"] for node in ray.nodes() if node["NodeID"] == node_id), {})
