"""``posactors backtest``: exit policies on daily bars, through the live engine's rules.

``bars`` reads and validates the data file, ``entries`` makes the positions to manage,
``paths`` turns a bar into intrabar prices, ``engine`` drives each position through
:class:`~posactors.paper.PaperTrader` (across worker processes), ``metrics`` and
``report`` say what came of it, ``runner`` ties one run together, ``cli`` is the
command.
"""
