"""restore: clean photographs with Restormer (Zamir et al., CVPR 2022).

The public API, importable from here::

    from restore_cli import Restorer, load_model, read_image, write_image

    restorer = Restorer(load_model("real_denoising"))
    image = read_image("photo.jpg")
    write_image(with_pixels(image, restorer.restore(image.pixels)), "photo_clean.jpg")

Each name is imported on first use, so ``import restore_cli`` (and ``restore --help``) does
not pay for importing torch. docs/architecture.md says where everything else lives.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("restore-cli")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

_PUBLIC = {
    "Restorer": "restore_cli.engine.restorer",
    "load_model": "restore_cli.model.zoo",
    "Restormer": "restore_cli.model.restormer",
    "RestormerConfig": "restore_cli.model.restormer",
    "read_image": "restore_cli.io.decode",
    "write_image": "restore_cli.io.encode",
    "with_pixels": "restore_cli.io.image",
    "DecodedImage": "restore_cli.io.image",
    "train": "restore_cli.training",
    "TrainingOptions": "restore_cli.training",
    "TrainingResult": "restore_cli.training",
}
"""Each public name and the module that defines it."""

__all__ = ["__version__", *_PUBLIC]

if TYPE_CHECKING:
    from restore_cli.engine.restorer import Restorer
    from restore_cli.io.decode import read_image
    from restore_cli.io.encode import write_image
    from restore_cli.io.image import DecodedImage, with_pixels
    from restore_cli.model.restormer import Restormer, RestormerConfig
    from restore_cli.model.zoo import load_model
    from restore_cli.training import TrainingOptions, TrainingResult, train


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'restore_cli' has no attribute {name!r}")
    value = getattr(import_module(_PUBLIC[name]), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
