"""`restore train`: fine-tune a Restormer on your own images, or train one from scratch.

  data.py        images read and checked up front; random crops, flips, rotations, noise
  sizes.py       the starting model: the paper's configuration, smaller ones, or weights
  schedule.py    warm-up + cosine learning rate, the progressive patch/batch schedule
  loop.py        one step: L1 loss, AdamW, clipping, moving average; its state dict
  validation.py  PSNR / SSIM of whole images through the engine, as `restore eval` scores
  state.py       the checkpoint (official layout) and the resumable state, written atomically
  run.py         train(...): options checked, data loaded, the loop, the files written

It reads images through ``restore_cli.io``, builds and loads networks through
``restore_cli.model``, validates through ``restore_cli.engine`` and ``restore_cli.quality``,
and is imported only by the CLI and the top-level API.
"""

from restore_cli.training.run import TrainingOptions, TrainingResult, train

__all__ = ["TrainingOptions", "TrainingResult", "train"]
