"""`restore run --weights CKPT INPUT...`: images through any Restormer checkpoint.

The direct path from files to the engine and back, so the engine can be used and measured
end to end with any weights. It shares the task commands' batch path (folders, globs, pipes,
naming, --json); the checkpoint replaces a task's zoo default.
"""

from __future__ import annotations

from restore_cli.cli.tasks import Task, checkpoint_command

RUN = Task(
    "run",
    None,
    "Restore images with the checkpoint given by --weights (its configuration is read from the file).",
    "restore run --weights my_finetune.pth photo.png -o out.png --tile 512\n"
    "restore run --weights real_denoising.pth scans/ -o clean/ --json",
    word="restored",
    log_tiles=True,
)

run_command = checkpoint_command(RUN)
