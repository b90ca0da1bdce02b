"""``python -m fullstory_async``: the ``fullstory-async`` command line."""

import sys

from fullstory_async.cli import main

if __name__ == "__main__":
    sys.exit(main())
