import sys

from layerwise_fast.cli import main

sys.exit(main())
