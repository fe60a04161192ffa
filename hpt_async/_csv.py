"""Formula cells in CSV: the escape every CSV export applies, and its inverse for readers.

A spreadsheet opening a CSV file runs a cell that starts with ``=``,
``+``, ``-`` or ``@`` (or a tab or carriage return before one) as a
formula: a study file from elsewhere could plant ``=HYPERLINK(...)`` in a
parameter value or a user attribute.  As OWASP recommends, a *text* cell
starting with one of those characters gets a single quote ``'`` prepended,
which spreadsheets show as text.  Numbers are never touched (``-0.5``
stays a number).

So that :func:`unguard_cell` is the exact inverse, a text that already
starts with quotes followed by one of those characters (``'=x``) gets one
more quote too; any other text is written as it is.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FORMULA_STARTS", "guard_cell", "unguard_cell"]

#: The first characters that make a spreadsheet treat a cell as a formula.
FORMULA_STARTS = frozenset("=+-@\t\r")


def _quoted_formula(text: str) -> bool:
    """True when ``text`` is quotes followed by a formula start (what :func:`unguard_cell` strips one quote of)."""
    return text[:1] == "'" and text.lstrip("'")[:1] in FORMULA_STARTS and text.lstrip("'") != ""


def guard_cell(value: Any) -> Any:
    """``value`` as a CSV export writes it: a text cell that a spreadsheet would run gets a ``'`` prepended.

    Only ``str`` values change: a text starting with ``=``, ``+``, ``-``,
    ``@``, a tab or a carriage return, or with quotes followed by one of
    those; anything else (numbers included) comes back as it is.
    """
    if isinstance(value, str) and value and (value[0] in FORMULA_STARTS or _quoted_formula(value)):
        return "'" + value
    return value


def unguard_cell(text: str) -> str:
    """The text :func:`guard_cell` was given, from the cell it wrote (readers of exported CSV use it).

    A cell that is a quote followed by quotes and a formula start loses one
    quote; any other cell comes back as it is.
    """
    if isinstance(text, str) and _quoted_formula(text):
        return text[1:]
    return text
