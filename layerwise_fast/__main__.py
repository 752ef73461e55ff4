"""``python -m layerwise_fast``: the command line."""

import sys

from layerwise_fast.cli import main

if __name__ == "__main__":
    sys.exit(main())
