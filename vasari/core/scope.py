"""The scope of the artist vocabulary as data (issue #14; docs/labels.md, *Scope of the
artist vocabulary*): painters active 1401-1900. Kept in ``core`` because both the dataset
build (``vasari.dataset.clean``) and the trust metrics (``vasari.heads.trust``) read it."""

from __future__ import annotations

#: Artists outside "painters active 1401-1900", with the reason (docs/labels.md documents it).
OUT_OF_SCOPE: dict[str, str] = {
    "Auguste Rodin": "sculptor",
    "Gian Lorenzo Bernini": "sculptor",
    "Edward Hopper": "20th-century American painter (active 1906-1967)",
    "L. S. Lowry": "20th-century painter (active 1905-1976)",
    "Childe Hassam": "American painter, active mostly after 1900",
}
