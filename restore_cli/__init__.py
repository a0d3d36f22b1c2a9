"""restore: clean photographs with Restormer (Zamir et al., CVPR 2022).

The public API is re-exported lazily so that ``restore --version`` and shell
completion do not pay for importing torch.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("restore-cli")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__", "load_model"]


def __getattr__(name: str):
    if name == "load_model":
        from restore_cli.model.zoo import load_model

        return load_model
    raise AttributeError(f"module 'restore_cli' has no attribute {name!r}")
