"""The sections of bench/memory.py: fork, copy-on-write, swap and hibernation, workloads."""
