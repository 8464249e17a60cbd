"""``python -m wtraj``: the command line (see :mod:`wtraj.cli`)."""

from wtraj.cli import run

run()
