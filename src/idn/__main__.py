"""``python -m idn``: the ``idn`` command."""

import sys

from .cli import main

sys.exit(main())
