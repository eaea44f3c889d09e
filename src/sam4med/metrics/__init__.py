from sam4med.metrics.distance import hausdorff, hausdorff_pair, image_diagonal
from sam4med.metrics.overlap import dice, iou

__all__ = ["dice", "hausdorff", "hausdorff_pair", "image_diagonal", "iou"]
