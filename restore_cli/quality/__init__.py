"""Scores the way the Restormer paper computes them: PSNR and SSIM (``metrics``) and the
paper's test protocols run end to end (``evaluation``, behind ``restore eval``).

It reads files through ``restore_cli.io`` and runs models through ``restore_cli.engine`` and
``restore_cli.model``; training and the CLI use it, and it never imports either of them.
"""
