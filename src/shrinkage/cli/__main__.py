"""``python -m shrinkage.cli``: the same as the ``shrinkage`` command."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
