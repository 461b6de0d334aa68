"""Stage 7: the paper's figures, one module per figure, each reading files a rule wrote.

Every figure is saved as PNG (300 dpi) and PDF with the same stem, in one style (``style``):
Okabe-Ito colours, labelled axes with units, a title saying which data, seeds and split.

| figure               | module              | reads                                    |
|----------------------|---------------------|------------------------------------------|
| gallery              | gallery             | datasets                                 |
| preprocessing        | preprocessing       | dataset, manifest, one raw cutout        |
| augmentation         | augmentation        | dataset                                  |
| learning_curves      | learning_curves     | history.csv of every run                 |
| confusion_matrices   | confusion_matrices  | metrics.json of every run                |
| roc_curves           | roc_curves          | metrics.json of every run                |
| variant_comparison   | variant_comparison  | tables/runs.csv                          |
| transfer_comparison  | transfer_comparison | tables/runs.csv                          |
| saliency             | saliency            | one checkpoint, dataset, predictions per survey |
| confident_errors     | confident_errors    | predictions.csv of every seed, datasets  |
"""

from rgmorph.figures.augmentation import plot_augmentation_examples
from rgmorph.figures.confident_errors import plot_confident_errors
from rgmorph.figures.confusion_matrices import plot_confusion_matrices
from rgmorph.figures.gallery import plot_gallery
from rgmorph.figures.learning_curves import plot_learning_curves
from rgmorph.figures.preprocessing import most_extended_source, plot_preprocessing_steps
from rgmorph.figures.roc_curves import plot_roc_curves
from rgmorph.figures.saliency import occlusion_map, plot_saliency
from rgmorph.figures.style import OKABE_ITO, save_figure
from rgmorph.figures.transfer_comparison import plot_transfer_comparison
from rgmorph.figures.variant_comparison import plot_variant_comparison

__all__ = [
    "OKABE_ITO", "most_extended_source", "occlusion_map", "plot_augmentation_examples", "plot_confident_errors",
    "plot_confusion_matrices", "plot_gallery", "plot_learning_curves", "plot_preprocessing_steps", "plot_roc_curves",
    "plot_saliency", "plot_transfer_comparison", "plot_variant_comparison", "save_figure",
]
