"""The sections of bench/throughput.py: the transformers baselines, the runs, the table."""
