"""posactors: an exit engine for Alpaca positions."""

__version__ = "0.1.0"

__all__ = ["Engine"]


def __getattr__(name: str):
    """``from posactors import Engine`` without importing the runtime for core-only use."""
    if name == "Engine":
        from posactors.runtime.engine import Engine

        return Engine
    raise AttributeError(name)
