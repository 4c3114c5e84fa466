"""Pure exit rules (SPEC section 1): no I/O, no threads, no clock of their own."""

from posactors.rules.evaluate import (
    Action,
    Alert,
    AskApproval,
    Cancel,
    Evaluation,
    Submit,
    build_intent,
    decide,
    observe_price,
    on_clock,
    on_order_update,
    on_quote,
    triggered,
)

__all__ = [
    "Action",
    "Alert",
    "AskApproval",
    "Cancel",
    "Evaluation",
    "Submit",
    "build_intent",
    "decide",
    "observe_price",
    "on_clock",
    "on_order_update",
    "on_quote",
    "triggered",
]
