"""Errors that mean "bad input": the command line maps them to exit status 2."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input (arguments, a data file): the message names where, what, and what was expected."""
