"""``restore bench``: the engine's speed, memory and fidelity on this machine, against the
official Restormer procedure, and the speed profile ``tile="auto"`` plans CPU tiles with.

``procedures`` says what the two procedures are; ``compare`` runs them side by side and
times ``restore run`` end to end; ``calibrate`` measures this machine's speed profile;
``worker`` is the fresh process every measurement runs in. Imports ``engine``, ``io``,
``model`` and ``quality`` below it, and torch only inside functions, so the CLI's help
loads none of it.
"""

from restore_cli.bench.calibrate import (
    CALIBRATION_SIDES,
    Calibration,
    SidePoint,
    calibrate,
    calibration_sides,
    sides_that_fit,
)
from restore_cli.bench.compare import (
    DEFAULT_SIZES,
    EndToEnd,
    Fidelity,
    Pass,
    PassReport,
    Row,
    Size,
    auto_precision,
    describe_machine,
    measure_end_to_end,
    measure_fidelity,
    native_precisions,
    parse_size,
    run_benchmark,
    speed_profile,
    timed,
)
from restore_cli.bench.procedures import OFFICIAL, OURS, PHOTO, compare_8bit, flops_per_pixel, to_8bit

__all__ = [
    "CALIBRATION_SIDES", "DEFAULT_SIZES", "OFFICIAL", "OURS", "PHOTO", "Calibration", "EndToEnd", "Fidelity", "Pass",
    "PassReport", "Row", "SidePoint", "Size", "auto_precision", "calibrate", "calibration_sides", "compare_8bit", "describe_machine",
    "flops_per_pixel", "measure_end_to_end", "measure_fidelity", "native_precisions", "parse_size", "run_benchmark",
    "sides_that_fit", "speed_profile", "timed", "to_8bit",
]
