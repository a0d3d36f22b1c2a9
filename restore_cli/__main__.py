"""Allows ``python -m restore_cli`` wherever the console script is not on PATH."""

from restore_cli.launch import main

main()
