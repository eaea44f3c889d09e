"""The one preparation flow every dataset preparer follows, and the base of the folder preparers.

``preparer(root)`` leaves a complete folder made with the same settings as it is (one made with other
settings is refused: it would silently stand for the new ones); otherwise it finds the inputs, opens a
:class:`~sam4med.prepare.writer.DatasetWriter` (which resumes an interrupted run), processes each
unfinished input with a progress bar, writes manifest and ``dataset.yaml`` and logs what it did.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from sam4med.dataset_format import DatasetInfo, ImageRecord, LabelMap, read_info
from sam4med.errors import ConfigError, DataError
from sam4med.prepare.inputs import file_stem, find_inputs, safe_id
from sam4med.prepare.labels import LabelSpec
from sam4med.prepare.lock import preparation_lock
from sam4med.prepare.rules import SliceRules
from sam4med.prepare.writer import DatasetWriter, Input, Part, is_complete, label_maps_from, log_counts, run_inputs


class Preparer:
    """Base of the dataset preparers.

    A subclass sets ``name`` (the dataset's, in ``dataset.yaml``) and ``unit`` (what one input is, for
    the progress bar) and gives :meth:`settings`, :meth:`inputs`, :meth:`process` and :meth:`label_maps`.
    """

    name: str
    unit: str = "input"

    def settings(self) -> dict:
        """Plain-data settings (recorded in dataset.yaml, compared when a run resumes)."""
        raise NotImplementedError

    def inputs(self) -> list[Input]:
        """The inputs; asked before anything is written, so it is where a bad config is refused."""
        raise NotImplementedError

    def process(self, item: Input, writer: DatasetWriter) -> Part:
        """Write what input ``item`` gives; a DataError makes the input a recorded skip."""
        raise NotImplementedError

    def label_maps(self, records: Sequence[ImageRecord]) -> tuple[LabelMap, ...]:
        """The label maps of dataset.yaml, given every manifest row written."""
        raise NotImplementedError

    def __call__(self, root: str | Path) -> Path:
        """Prepare into ``root`` unless it is complete; returns ``root``.

        Processes that prepare the same folder at once (the jobs of a sweep) take turns
        (:func:`~sam4med.prepare.lock.preparation_lock`): the first prepares, the others then find it
        complete.
        """
        root = Path(root)
        if is_complete(root):
            self.check_same_settings(root)
            return root
        with preparation_lock(root):
            if is_complete(root):  # another process finished it while this one waited
                self.check_same_settings(root)
                return root
            return self._prepare(root)

    def _prepare(self, root: Path) -> Path:
        start = time.perf_counter()
        inputs = self.inputs()
        settings = self.settings()
        writer = DatasetWriter(root, settings)
        parts = run_inputs(writer, inputs, self.process, desc=f"{self.name} {self.unit}s", unit=self.unit)
        records = [r for p in parts for r in p.records]
        writer.finish(DatasetInfo(self.name, self.label_maps(records), preparation=settings), parts)
        log_counts(root, parts, start)
        return root

    def check_same_settings(self, root: Path) -> None:
        """Refuse a complete folder whose recorded preparation differs from this preparer's settings."""
        recorded = read_info(root).preparation
        wanted = json.loads(json.dumps(self.settings()))
        if recorded is None:
            return  # a folder made by hand and marked complete: nothing to compare
        recorded = json.loads(json.dumps(dict(recorded)))
        changed = sorted(k for k in set(recorded) | set(wanted) if recorded.get(k) != wanted.get(k))
        if changed:
            first = changed[0]
            raise DataError(
                f"{root}: already prepared with other settings ({first}: {recorded.get(first)!r} there, "
                f"{wanted.get(first)!r} now{', and more' if len(changed) > 1 else ''}); "
                "choose another dataset.root or delete the folder"
            )


class FolderPreparer(Preparer):
    """Base of the preparers of a user's files: one input per file matching a glob pattern.

    Args:
        name: dataset name.
        images: glob pattern of the input files.
        label_maps: one entry per output label map (see :class:`~sam4med.prepare.labels.LabelSpec`).
        source_pattern: regular expression picking the patient id out of a file stem (default: the stem).
        min_label_sum, label_sum_maps, min_object_area, max_components: see :mod:`.rules`.
    """

    def __init__(
        self,
        *,
        name: str,
        images: str,
        label_maps: Sequence[Mapping],
        source_pattern: str | None,
        min_label_sum: int,
        label_sum_maps: Sequence[str] | None,
        min_object_area: int,
        max_components: int,
    ) -> None:
        self.name, self.images = name, str(images)
        self.specs = tuple(LabelSpec.from_config(m) for m in label_maps)
        if not self.specs or any(not s.path for s in self.specs):
            raise ConfigError("label_maps: give at least one label map, each with a path template")
        self.source_pattern = source_pattern
        self.rules = SliceRules.build(min_label_sum, label_sum_maps, min_object_area, max_components)

    def inputs(self) -> list[Input]:
        """One input per matching file, keyed by its file-name-safe stem."""
        return [Input(safe_id(file_stem(p)), str(p)) for p in find_inputs(self.images)]

    def label_maps(self, records: Sequence[ImageRecord]) -> tuple[LabelMap, ...]:
        """The specs' object names; an instance map is numbered up to the most instances in one image."""
        return label_maps_from(
            [(s.name, s.instances if s.instances else s.output_names()) for s in self.specs], records
        )
