"""The parts of bench/syscalls.py: the echo floor, servers, clients, rpc, streaming, report.

Clients and servers run in processes started with ``spawn``, which import these
modules afresh: none of them imports torch at module level.
"""
