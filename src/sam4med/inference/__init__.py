"""``predict.py``: masks for images and NIfTI volumes without labels, from prompts in a file or drawn from labels.

Modules: :mod:`.inputs` (the input files, read as the preparers and the dataset read them; a volume's
grid), :mod:`.settings` (:class:`~.settings.PredictSettings`, the ``prediction`` node), :mod:`.requests`
(the prompts of each input, from a prompts file or from labels), :mod:`.propagate` (box propagation through
a volume), :mod:`.run` (decoding) and :mod:`.outputs` (label PNG / NIfTI masks, ``predictions.csv``).
"""
