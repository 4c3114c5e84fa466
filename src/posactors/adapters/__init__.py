"""Adapters: the broker and market-data ports and their implementations.

``sim`` is the simulated exchange (virtual time, seeded faults, optional LMDB account);
``alpaca`` talks to Alpaca through alpaca-py. Import the one you need: this package
imports neither, so loading one never loads the other.
"""
