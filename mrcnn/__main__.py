"""``python -m mrcnn`` runs the command-line interface."""

import sys

from mrcnn.cli import main

sys.exit(main())
