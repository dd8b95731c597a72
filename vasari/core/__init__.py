"""Foundations every stage uses: label vocabularies (``labels``), safe image decoding
(``images``), atomic file writes (``fileio``), progress (``progress``) and where the shared
data lives (``paths``). Import the module you need; this package re-exports nothing, so
that importing one light module (the vocabularies) never pulls in Pillow or numpy."""
