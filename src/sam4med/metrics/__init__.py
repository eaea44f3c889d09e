from sam4med.metrics.distance import hausdorff, image_diagonal
from sam4med.metrics.overlap import dice, iou

__all__ = ["dice", "hausdorff", "image_diagonal", "iou"]
