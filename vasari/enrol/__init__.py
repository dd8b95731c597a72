"""Teach it an artist: add a class to a bundle's artist head from 5-20 images, in seconds,
without the training data (issue #16).

``enrol_artist(model, name, images, out)`` (files) and ``enrol_features`` (features already
computed) write a NEW versioned bundle: the artist head gains a class fitted against the
bundle's reference rows (``enrol.npz``, see ``reference``) with the old classes fixed
(``refit``), the gallery index gains the works, and the model card records what was added,
when and from which images (paths + sha256). ``build_reference`` makes the reference rows a
bundle needs (``write_reference`` adds them to a saved bundle).
"""

from vasari.enrol.reference import (
           REFERENCE_FILE,
           EnrolReference,
           ReferenceConfig,
           build_reference,
           write_reference,
)
from vasari.enrol.refit import FitConfig
from vasari.enrol.run import (
           EnrolConfig,
           EnrolError,
           EnrolResult,
           ImageSource,
           enrol_artist,
           enrol_features,
)

__all__ = [
           "REFERENCE_FILE",
           "EnrolConfig",
           "EnrolError",
           "EnrolReference",
           "EnrolResult",
           "FitConfig",
           "ImageSource",
           "ReferenceConfig",
           "build_reference",
           "enrol_artist",
           "enrol_features",
           "write_reference",
]
