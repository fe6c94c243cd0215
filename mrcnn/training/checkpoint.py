"""Former home of :mod:`mrcnn.checkpoint`; this name is the very same module object."""

import sys

from mrcnn import checkpoint

# why: an alias (not a copy of its names), so that patching either name patches both.
sys.modules[__name__] = checkpoint
