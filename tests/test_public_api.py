"""The Python API from the top of the package, loaded lazily: `import restore_cli` and
`restore --help` never import torch; the first use of a name does."""

from __future__ import annotations

import subprocess
import sys

import restore_cli


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_public_names_are_the_objects_the_subpackages_define() -> None:
    from restore_cli import DecodedImage, Restorer, Restormer, load_model, read_image, train, with_pixels, write_image
    from restore_cli.engine.restorer import Restorer as engine_restorer
    from restore_cli.io import decode, encode, image
    from restore_cli.model import restormer, zoo
    from restore_cli.training import run

    assert Restorer is engine_restorer and Restormer is restormer.Restormer and load_model is zoo.load_model
    assert read_image is decode.read_image and write_image is encode.write_image
    assert DecodedImage is image.DecodedImage and with_pixels is image.with_pixels and train is run.train
    assert set(restore_cli.__all__) >= {"Restorer", "load_model", "read_image", "write_image", "Restormer", "train"}


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        restore_cli.Frobnicate  # noqa: B018
    except AttributeError as error:
        assert "Frobnicate" in str(error)
    else:
        raise AssertionError("restore_cli.Frobnicate exists")


def test_importing_the_package_loads_no_torch_and_a_name_loads_it_when_used() -> None:
    code = "import sys, restore_cli; print('torch' in sys.modules); restore_cli.Restorer; print('torch' in sys.modules)"
    assert _python(code).split() == ["False", "True"]


def test_help_loads_no_torch() -> None:
    code = (
        "import sys\n"
        "from restore_cli.cli.app import app\n"
        "try:\n"
        "    app(['--help'], prog_name='restore')\n"
        "except SystemExit:\n"
        "    pass\n"
        "for command in ('denoise', 'run', 'models', 'eval', 'train', 'bench'):\n"
        "    try:\n"
        "        app([command, '--help'], prog_name='restore')\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('torch' in sys.modules, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr.strip() == "False", done.stderr
