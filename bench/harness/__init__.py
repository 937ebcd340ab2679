"""What the benchmark scripts share: the machine, contention, clocks, models, workloads, reports.

The scripts put ``bench/`` on ``sys.path`` (it is the folder of the script run), so
this package imports as ``harness``. Nothing here imports torch at module level:
bench/syscalls.py starts its clients with ``spawn`` and they must start clean.
"""
