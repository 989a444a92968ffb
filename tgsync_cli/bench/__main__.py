"""scripts/bench: python -m tgsync_cli.bench."""

import sys

from tgsync_cli.bench.throughput import main

sys.exit(main())
