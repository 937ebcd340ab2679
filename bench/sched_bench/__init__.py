"""The parts of bench/sched.py: the workload, the runs, the scheduler's overhead, the report.

Modules here import tests/sim_driver.py: bench/sched.py puts tests/ on ``sys.path`` first.
"""
