"""Vasari's label vocabularies: the tasks a model answers and the values each may take.

Every catalog reader maps its source's own words onto these vocabularies (see
``vasari.normalize``), so that sources can be merged and one model trained on all of them.
"""

from __future__ import annotations

#: Classification tasks, in the order reports and the API show them.
TASKS: tuple[str, ...] = ("type", "school", "timeframe", "style", "artist")

#: Vasari's period bins: 50 years each, 1401-1900, as in the Web Gallery of Art.
FIRST_YEAR, LAST_YEAR, BIN_YEARS = 1401, 1900, 50
TIMEFRAMES: tuple[str, ...] = tuple(
    f"{start}-{start + BIN_YEARS - 1}" for start in range(FIRST_YEAR, LAST_YEAR, BIN_YEARS)
)


def timeframe_of(year: int | None) -> str | None:
    """The 50-year bin ("1601-1650") a year falls in, or None outside 1401-1900."""
    if year is None or not FIRST_YEAR <= year <= LAST_YEAR:
        return None
    start = FIRST_YEAR + (year - FIRST_YEAR) // BIN_YEARS * BIN_YEARS
    return f"{start}-{start + BIN_YEARS - 1}"
