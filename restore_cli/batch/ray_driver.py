"""The Ray driver: a child process of `restore` that joins the cluster and dispatches the batch.

Started by `ray_executor` as ``python -m restore_cli.batch.ray_driver FD``: it reads messages
(`ray_protocol`) on stdin and writes its own on file descriptor FD; its stdout and stderr are
wherever `restore` put them (nowhere unless --debug), so nothing Ray prints reaches the user.
When `restore` goes away (its end of stdin closes), the batch is cancelled and Ray shut down.
"""

from __future__ import annotations

import logging
import sys
import threading
from dataclasses import replace

import ray
from ray.exceptions import RayError

from restore_cli.batch.pipeline import describe_error
from restore_cli.batch.ray_dispatch import Dispatcher
from restore_cli.batch.ray_protocol import (
    Batch,
    Cancel,
    Channel,
    ChannelClosed,
    Connected,
    Done,
    Lost,
    RayOptions,
    Refused,
    Start,
    Unreachable,
    Weights,
)
from restore_cli.errors import WorkerError, install_spelling, setting


def main() -> None:
    channel = Channel(read_fd=0, write_fd=int(sys.argv[1]))
    try:
        start = channel.receive()
        assert isinstance(start, Start)
        install_spelling(start.spelling)
        options = start.options
        if not _connect(options, channel):
            return
        try:
            _serve(options, channel)
        finally:
            ray.shutdown()
    except ChannelClosed:
        pass  # restore is gone: nobody to report to


def _connect(options: RayOptions, channel: Channel) -> bool:
    """Join the cluster and check that it holds one worker; say which, in one message."""
    address = options.address or "local"
    try:
        ray.init(
            address=address,
            include_dashboard=False if address == "local" else None,
            log_to_driver=options.debug,
            logging_level=logging.INFO if options.debug else logging.ERROR,
        )
    except Exception as error:  # Ray's words name its own flags; ours name the user's
        channel.send(Unreachable(_why_unreachable(address, error)))
        return False
    try:
        worker_count(options, 1)
    except WorkerError as error:
        channel.send(Refused(str(error)))
        return False
    channel.send(Connected())
    return True


def _why_unreachable(address: str, error: Exception) -> str:
    if address == "auto":
        return "no Ray cluster runs on this machine (start one with `ray start --head`, or give HOST:PORT)"
    return f"Ray could not connect ({type(error).__name__})"


def _serve(options: RayOptions, channel: Channel) -> None:
    batch = channel.receive()
    if not isinstance(batch, Batch):
        return
    cancelled = threading.Event()
    threading.Thread(target=_listen, args=(channel, cancelled), name="restore-cancel", daemon=True).start()
    try:
        weights = {spec: Weights(ray.put(w.data), w.source) for spec, w in batch.recipe.weights.items()}
        size = worker_count(options, len(batch.jobs))
        recipe = replace(batch.recipe, weights=weights, workers=size)
        Dispatcher(recipe, options, size, channel.send, cancelled).run(batch.jobs)
    except WorkerError as error:
        channel.send(Refused(str(error)))
    except (RayError, ConnectionError, OSError) as error:  # the cluster is gone from under the driver
        channel.send(Lost(f"the connection to the Ray cluster failed ({type(error).__name__})"))
    except Exception as error:  # a bug here: said as one, not as a lost cluster
        channel.send(Refused(describe_error(error)))
    channel.send(Done())


def _listen(channel: Channel, cancelled: threading.Event) -> None:
    """Ctrl-C in restore, or restore gone: either way, cancel."""
    try:
        while not isinstance(channel.receive(), Cancel):
            pass
    except ChannelClosed:
        pass
    cancelled.set()


def worker_count(options: RayOptions, jobs: int) -> int:
    """--workers, or as many as the cluster holds; a cluster that cannot hold even one worker is
    an error now rather than a batch that waits forever for room."""
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    fit = int(cpus // options.cpus_per_worker)
    if options.gpus_per_worker > 0:
        fit = min(fit, int(gpus // options.gpus_per_worker))
    if fit == 0:
        raise WorkerError(
            f"the Ray cluster has {cpus:g} CPUs and {gpus:g} GPUs, too few for one worker with "
            f"{setting('cpus_per_worker')} {options.cpus_per_worker:g} {setting('gpus_per_worker')} {options.gpus_per_worker:g}; "
            "lower them or add nodes"
        )
    return min(options.workers if options.workers is not None else fit, jobs)


if __name__ == "__main__":
    main()
