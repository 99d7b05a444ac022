"""``python -m prefine_core``: the command-line interface."""
import sys

from prefine_core.cli import main

sys.exit(main(exiting=True))
