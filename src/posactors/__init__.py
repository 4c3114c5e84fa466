"""posactors: an exit engine for Alpaca positions."""

__version__ = "0.1.0"
