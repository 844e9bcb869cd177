"""`python -m lrkit COMMAND ...`, the same as the `lrkit` console script."""
from lrkit.cli import entry

entry()
