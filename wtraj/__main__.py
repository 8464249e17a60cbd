"""``python -m wtraj``: the command line (see :mod:`wtraj.cli`)."""

import sys

from wtraj.cli import main

sys.exit(main())
