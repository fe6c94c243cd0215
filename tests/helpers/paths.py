"""Where the suite's files are: the repository, the committed fixtures, the shared data."""

from __future__ import annotations

from pathlib import Path

#: The repository's root (this file is tests/helpers/paths.py).
REPO = Path(__file__).resolve().parents[2]
#: Committed fixtures (reference outputs of Matterport's code and the scripts that made them are
#: in tools/matterport_reference/).
FIXTURES = REPO / "tests" / "fixtures"
#: The balloon dataset beside the checkout (never committed).
BALLOON = REPO.parent / "shared" / "data" / "balloon"
