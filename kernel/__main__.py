"""``python -m llmos.kernel``: run a kernel in the foreground, configured by LLMOS_*."""

from llmos.kernel.main import run

raise SystemExit(run())
