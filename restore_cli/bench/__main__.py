"""``python -m restore_cli.bench COMMAND PAYLOAD_JSON``: one measurement in a fresh process."""

import sys

from restore_cli.bench.worker import main

main(sys.argv[1:])
