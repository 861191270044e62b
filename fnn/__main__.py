"""`python -m fnn ...` is the `fnn` command (see `fnn.cli`)."""
import sys

from fnn.cli import main

sys.exit(main())
