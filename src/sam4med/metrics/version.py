"""The version of the metric and row rules, stamped with the prompt rules on every evaluation-log line and
zero-shot store file, so a row made under other rules is scored again instead of being reused.
"""

# Bump by one for any change of what a scored row holds (the columns of
# sam4med.evaluation.rows.ObjectResult) or of how a value in it is computed: Dice and IoU (and their empty-mask
# rules), the Hausdorff distances (HD95's percentile, the image diagonal of a missed object, mm vs pixels),
# S1's mask matching, the multimask choice, the minimum-area or clipping rule applied as images are read.
# 1: rows with the `source` column (issue 22); rows written before it have no version and no `source`.
# 2: rows with the `nsd` column (normalised surface distance at metrics.nsd_tolerance, after metrics.nsd_rule;
#    issue 26).
METRIC_RULES = 2
