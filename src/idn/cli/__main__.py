"""``python -m idn.cli``: the ``idn`` command."""

import sys

from . import main

sys.exit(main())
