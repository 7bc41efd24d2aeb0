"""``python -m surveillance.cli``: the command line."""

import sys

from surveillance.cli import main

sys.exit(main())
