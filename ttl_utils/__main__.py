"""Entry point of `python -m ttl_utils`."""

import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C while torch is still being imported: nothing has started
    print("Interrupted.", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
