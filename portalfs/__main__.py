"""Lets `python -m portalfs` run the command line."""

import sys

from .cli import main

sys.exit(main())
