"""``python -m xad`` entry point."""

import sys

from xad.cli import main

if __name__ == "__main__":
    sys.exit(main())
