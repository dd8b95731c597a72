"""Fine-tuning: unfreeze the last stages of the backbone and train it with multi-task heads.

The frozen-backbone pipeline (features -> logistic heads) is Vasari's default because it is
cheap and works on a CPU. ``finetune`` goes one step further where a GPU is available:

* the torch backbone (``vasari.features.nets.build_torch_backbone``) has its last stage(s)
  unfrozen (``unfreeze="last"``, a number of stages, or ``"all"``); BatchNorm running
  statistics stay frozen (small batches on few paintings would corrupt them), their affine
  weights train with the stage they belong to;
* one linear layer per task sits on the backbone's features (plus a year regressor);
  missing labels are masked out of the loss, classes are weighted by inverse frequency;
* AdamW with a smaller learning rate for the backbone, linear warmup then cosine decay per
  step, AMP on CUDA (bf16 where supported, else fp16 with a ``GradScaler``);
* augmentation: random resized crop, horizontal flip, light colour jitter;
* early stopping on validation loss; the best checkpoint is saved atomically and restored.

Export (``finetune_artworks``): the best weights (by validation loss; checkpoint saved
atomically to ``<bundle>.finetune/best.pt`` beside the bundle — a torch checkpoint is a
pickle, and bundles hold none) are exported to ONNX **inside the bundle** (``backbone.onnx``,
same uint8 input as ``vasari.features.nets.export_onnx``) under their own ``BackboneSpec``: the base
spec renamed ``<base>+ft-<digest of the weights>``, so the key differs from the stock
backbone's and a bundle can never be mixed up with features or caches of another backbone;
``bundle.load_bundle`` refuses a ``+ft-`` spec without its ONNX and ``predict.make_embedder``
checks the graph's recorded spec against the bundle's. The linear heads used during
fine-tuning are *not* shipped: the bundle's heads are refit by ``vasari.pipeline.fit_dataset``
(the code behind ``vasari train``) on features of the exported ONNX model — the same
calibrated heads, year regressor, abstention thresholds, evaluation and report every other
bundle has, computed with exactly the numbers the predictor will see. The fine-tuned
linear heads are only the training signal for the backbone.

Modules: ``config`` (``FinetuneConfig``, ``Sample``; no torch), ``model`` (``MultiTaskModel``,
stages, BatchNorm), ``data`` (``ImageSamples``, vocabulary, weights, loaders), ``loop`` (``fit``
-> ``FinetuneFit``) and ``run`` (export and the whole run). Running a fine-tuned bundle needs
none of them: its embedder is ``vasari.features.finetuned``.
"""

from vasari.features.defaults import BUNDLE_ONNX
from vasari.features.finetuned import finetuned_embedder, onnx_spec
from vasari.finetune.config import YEAR_CENTER, YEAR_SCALE, FinetuneConfig, FinetuneError, Sample
from vasari.finetune.data import (
    ImageSamples,
    balanced_weights,
    build_vocab,
    image_transforms,
    make_loaders,
    samples_from_artworks,
    usable_samples,
)
from vasari.finetune.loop import (
    FinetuneFit,
    amp_settings,
    atomic_torch_save,
    evaluate_model,
    fit,
    multitask_loss,
    resolve_device,
    warmup_cosine,
)
from vasari.finetune.model import MultiTaskModel, backbone_stages, calibrate_norm, freeze_batchnorm, set_trainable
from vasari.finetune.run import (
    FinetuneResult,
    default_work_dir,
    export_finetuned,
    finetune_artworks,
    finetune_backbone,
    finetune_dataset,
    finetuned_spec,
)

__all__ = [
    "YEAR_CENTER",
    "YEAR_SCALE",
    "FinetuneError",
    "FinetuneConfig",
    "Sample",
    "resolve_device",
    "amp_settings",
    "backbone_stages",
    "set_trainable",
    "freeze_batchnorm",
    "MultiTaskModel",
    "build_vocab",
    "balanced_weights",
    "image_transforms",
    "ImageSamples",
    "make_loaders",
    "usable_samples",
    "FinetuneFit",
    "multitask_loss",
    "warmup_cosine",
    "atomic_torch_save",
    "evaluate_model",
    "fit",
    "calibrate_norm",
    "finetuned_spec",
    "BUNDLE_ONNX",
    "finetuned_embedder",
    "onnx_spec",
    "export_finetuned",
    "FinetuneResult",
    "samples_from_artworks",
    "finetune_backbone",
    "default_work_dir",
    "finetune_artworks",
    "finetune_dataset",
]
