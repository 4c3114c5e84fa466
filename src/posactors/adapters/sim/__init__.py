"""The simulated venue: a Broker and MarketData in virtual time, for demos and tests.

- ``exchange``: :class:`SimExchange`, the ports' implementation
- ``book``: the order book and account; ``orders``: order checks and seeded faults
- ``feeds``: seeded price paths and replays; ``store``: the optional LMDB account
"""

from posactors.adapters.sim.exchange import SimExchange
from posactors.adapters.sim.orders import SimFaults

__all__ = ["SimExchange", "SimFaults"]
