"""The names every layer agrees on, in a module without imports so that the CLI can use them in
its option defaults and ``vasari --help`` stays fast (``vasari.features.spec`` needs numpy and PIL).
"""

#: Bump when the feature definition (layers, order, maths) changes: it invalidates caches.
FEATURE_VERSION = 1
FEATURES = ("stats", "pooled")
#: Test-time views averaged into one vector per picture (``BackboneSpec.views``):
#: "center" the centre crop; "flip" it and its mirror; "multicrop" those two plus five
#: ``size`` x ``size`` crops (four corners, centre) of the picture resized to shorter side
#: ``2 * size`` (each sees a quarter of the picture at twice the resolution: brush work).
VIEWS = ("center", "flip", "multicrop")
DEFAULT_BACKBONE = "efficientnet_lite2"
DEFAULT_FEATURE = "stats"
#: The file name of a fine-tuned backbone's ONNX graph inside a bundle folder.
BUNDLE_ONNX = "backbone.onnx"
