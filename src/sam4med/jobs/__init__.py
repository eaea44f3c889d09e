"""What the entry points run: one function per command, taking the composed Hydra config.

``prepare.py`` -> :func:`sam4med.jobs.prepare.prepare_dataset`, ``evaluate.py`` ->
:func:`sam4med.jobs.evaluate.evaluate_model`, ``train.py`` -> :func:`sam4med.jobs.train.fine_tune`,
``predict.py`` -> :func:`sam4med.jobs.predict.predict_masks`.
Tests call these functions directly on configs composed with ``hydra.compose``.
"""
