#!/usr/bin/env bash
# Rebuild the default model bundle that ships inside the package (vasari/models/default)
# from the real paintings in ../shared/data (or $VASARI_DATA). Images are read in place;
# only heads, vocabularies, metrics, the model card and the gallery index's embeddings and
# metadata (no images) end up in the package.
#
#   bash scripts/build-default-bundle.sh            # ~5 min cold on 2 cores, ~1 min cached
set -euo pipefail
cd "$(dirname "$0")/.."
work=${VASARI_BUILD_DIR:-runs/default-build}
target=vasari/models/default

# 1. every labelled source merged; grouped split (near-duplicates and details of one work together)
vasari dataset build --shared --split grouped --artist-scope --out "$work/dataset"
# 2. heads on the default backbone (EfficientNet-Lite2, style statistics), evaluated on val and test;
#    one augmented view per train picture for the type head (docs/trust-research.md 3b);
#    thresholds from out-of-source predictions; leave-source-out and leave-artists-out figures in the card
vasari train "$work/dataset" --out "$work/vasari-default" --augment-views 1 --abstention out-of-source --protocols leave-source-out,leave-artists-out --reproduce "bash scripts/build-default-bundle.sh"
# 3. the gallery index: embeddings + metadata of every work, plus known non-paintings for novelty
vasari index build "$work/dataset" --negatives shared --no-thumbnails --out "$work/vasari-default/index"
# 4. swap it into the package atomically (the plots stay in $work, the package keeps it small)
rm -rf "$target.new"; mkdir -p "$(dirname "$target")"
cp -r "$work/vasari-default" "$target.new"; rm -rf "$target.new/report"
rm -rf "$target.old"; [ -d "$target" ] && mv "$target" "$target.old"
mv "$target.new" "$target"; rm -rf "$target.old"
du -sh "$target"
