"""Allows ``python -m restore_cli`` wherever the console script is not on PATH."""

from restore_cli.cli.launcher import main

main()
