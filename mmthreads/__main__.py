"""``python -m mmthreads`` runs the command-line interface."""

from __future__ import annotations

import sys

from mmthreads.cli import main

sys.exit(main())
