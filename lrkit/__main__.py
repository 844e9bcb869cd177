"""`python -m lrkit COMMAND ...`, the same as the `lrkit` console script."""
import sys

from lrkit.cli import main

sys.exit(main())
