"""``python -m llmos.cli``: the same as ``llmosctl``."""

from llmos.cli import main

main()
