"""Entry point of `python -m ttl_utils`."""

import sys

from .cli import main

sys.exit(main())
