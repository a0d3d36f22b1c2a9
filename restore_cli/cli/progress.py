"""How the command line draws a model download: one rich bar on stderr, like its other
progress displays, in place of huggingface_hub's own tqdm bar."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from restore_cli.model.download import SilentBar


class RichDownloadBar(SilentBar):
    """huggingface_hub's tqdm calls (and the release download's), drawn as a rich bar."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        label = kwargs.get("desc") or "download"  # a disabled tqdm does not keep its desc
        self._rich = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(stderr=True),
        )
        self._task = self._rich.add_task(label, total=self.total, completed=self.n)
        self._rich.start()

    def update(self, n: float | None = 1) -> bool | None:
        super().update(n)
        self._rich.update(self._task, completed=self.n, total=self.total)
        return None

    def close(self) -> None:
        self._rich.stop()
        super().close()
