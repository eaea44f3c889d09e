"""Preparation of COSMOS-style dataset folders from 3D/4D volumes and 2D images.

``python prepare.py dataset=<name> [dataset.root=DIR] [overrides]`` prepares the dataset of
``conf/dataset/<name>.yaml`` (see ``docs/data.md``). Modules: :mod:`.volumes` (NIfTI), :mod:`.images`
(PNG, JPG, BMP, TIF), :mod:`.labels` (label values -> objects), :mod:`.rules` (slice and object rules),
:mod:`.intensity` (normalisation, windowing), :mod:`.slices` and :mod:`.writer` (atomic, resumable output).
"""
