"""``python -m llmos``: the same as ``llmosctl``."""

from llmos.cli import main

main()
