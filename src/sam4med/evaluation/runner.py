"""Scoring a dataset under the strategies S1–S6 and iterative clicks ``I`` (zero-shot, or with a fine-tuned decoder).

Each image is encoded once (through the embedding cache, ``embeddings.batch_size`` images per encoder
call) and its embedding reused by every strategy;
all objects of an image under one of S2–S6 are decoded in batched calls sized for the device, and S1 runs SAM's
automatic mask generator on the same embedding (see :mod:`sam4med.evaluation.everything`). Rows are
appended to a JSON-lines log as each image finishes, so an interrupted run keeps what it has and a
re-run with the same log skips the images already scored. Strategy ``I`` (iterative clicks, see
:mod:`sam4med.evaluation.interactive`) writes one row per click count, ``I@1`` ... ``I@<clicks>``, decodes
every click on the same embedding, and logs the clicks it placed beside the rows (``<log>.clicks.jsonl``:
one line per phase and object, the start prompt and the clicks) so a run can be reproduced and checked.

Each log line carries ``settings``, a hash of everything that determines its row (see
:func:`settings_hash`) and of the scored images' content (``CosmosDataset.content_hash``: image and
label files byte for byte); a re-run whose settings differ from the logged rows of its phase is
refused, so a run folder re-used with another model, decoder, input clipping, mask selection, S1 grid,
prompt seed, prompt sampling, iterative-click settings or changed images never mixes stale rows into new
results. Each line also
records the prompt and metric rule versions (:mod:`sam4med.evaluation.rules`); a line of other versions
(or of none: written before versions were recorded) is dropped and its image scored again, with one
warning saying how many lines and why.

Zero-shot rows can also be shared between runs (``zero_shot_store``, see
:mod:`sam4med.evaluation.zero_shot_store`): the jobs of a sweep that score the same images under the
same settings hash read the rows the first of them wrote instead of decoding again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from sam4med.compute import Compute
from sam4med.data.dataset import CosmosDataset, ImageItem
from sam4med.embeddings import EmbeddingCache
from sam4med.errors import DataError
from sam4med.evaluation.everything import EverythingMode, EverythingSettings, match_masks
from sam4med.evaluation.interactive import (
    INTERACTIVE,
    ClickLoop,
    ClickRecord,
    InteractiveSettings,
    check_start,
    click_strategy,
    row_strategies,
    start_prompt,
)
from sam4med.evaluation.predict import predict_scored
from sam4med.evaluation.predictions import ImagePrediction, PredictionFiles
from sam4med.evaluation.rows import COLUMNS, ObjectResult, Phase
from sam4med.evaluation.rules import RULES, describe, rules_of
from sam4med.evaluation.scoring import MetricSettings, score_objects
from sam4med.evaluation.zero_shot_store import ZeroShotStore
from sam4med.files import write_text
from sam4med.models.multimask import Multimask
from sam4med.models.sam_model import SamModel
from sam4med.prompts.generate import STRATEGIES
from sam4med.prompts.modes import MODES
from sam4med.prompts.prompt import Prompt
from sam4med.prompts.store import PromptStore

ALL_STRATEGIES = ("S1", *sorted(STRATEGIES), *MODES)  # MODES: M1-M5 (sam4med.prompts.modes)
# every name evaluation.strategies accepts: the strategies above (one row per object each) and the iterative
# clicks I (one row per object and click count: I@1 ... I@<clicks>, see sam4med.evaluation.interactive)
STRATEGY_NAMES = (*ALL_STRATEGIES, INTERACTIVE)

log = logging.getLogger("sam4med")


# The prompts file is rewritten whole, so writing it after every image would make a run quadratic in its
# size. A prompt is a pure function of (mask, strategy, seed, object, sampling): one drawn after the last
# save of a killed run is drawn again, identically, when the run resumes.
PROMPT_SAVE_SECONDS = 30.0

# Phases scored with the base model's own decoder: their rows depend on the base weights only. (When
# training resumes from a checkpoint, the trained decoder is already loaded when the zero-shot rows are
# read back from the log, so the decoder must not be part of their hash.)
BASE_DECODER_PHASES = (Phase.ZERO_SHOT,)


def settings_hash(
    model: SamModel,
    dataset: CosmosDataset,
    prompts: PromptStore,
    *,
    phase: Phase,
    multimask: Multimask,
    everything: EverythingSettings,
    bf16: bool = False,
    shared_work: bool = False,
    interactive: InteractiveSettings | None = None,
    metrics: MetricSettings | None = None,
) -> str:
    """SHA-256 (16 hex digits) of what determines a row: backbone, base weights and preprocessing,
    the decoder weights (for a phase of the base decoder, the base weights' decoder as the builder loaded
    it: ``SamModel.base_decoder_hash``), the image encoder's precision, the
    dataset's input clipping and minimum object area, mask selection, S1 settings, prompt seed and
    point sampling, and the options that change outputs by float rounding (bf16 decoding, the
    shared-work decoder, SDPA attention), and the NSD tolerance and rule (``metrics``; None: the defaults).
    ``interactive``: the iterative-click settings, given for the hash
    of the ``I@k`` rows only (the rows of the other strategies do not depend on them, so they keep their
    hashes whatever ``evaluation.interactive`` says).
    """
    parts = _settings_parts(
        model,
        dataset,
        prompts,
        phase=phase,
        multimask=multimask,
        everything=everything,
        bf16=bf16,
        shared_work=shared_work,
        metrics=metrics,
    )
    return _digest(parts, interactive)


def _settings_parts(
    model: SamModel,
    dataset: CosmosDataset,
    prompts: PromptStore,
    *,
    phase: Phase,
    multimask: Multimask,
    everything: EverythingSettings,
    bf16: bool,
    shared_work: bool,
    metrics: MetricSettings | None = None,
) -> dict:
    """What :func:`settings_hash` hashes (but the interactive settings), computed once per phase."""
    parts = {
        "backbone": model.name,
        "weights": model.weights_source,
        "image_encoder": model.module_hash(model.image_encoder),
        "prompt_encoder": model.module_hash(model.prompt_encoder),
        "preprocessing": model.preprocessing.key(),
        "decoder": (
            f"base:{model.base_decoder_hash}" if phase in BASE_DECODER_PHASES else model.module_hash(model.mask_decoder)
        ),
        "multimask": multimask.value,
        "everything": asdict(everything),
        "prompt_seed": prompts.seed,
        "prompt_sampling": prompts.sampling,
        "clip_percentiles": None if dataset.clip_percentiles is None else list(dataset.clip_percentiles),
        "min_object_area": dataset.min_object_area,
        "metrics": (metrics or MetricSettings()).key(),
    }
    options = {  # only those set, so that default rows keep the hashes of earlier versions
        "encoder_bf16": model.encoder_bf16,
        "encoder_sdpa": model.encoder_sdpa,
        "decoder_sdpa": model.decoder_sdpa,
        "decoder_bf16": bf16,
        "shared_work": shared_work,
    }
    parts.update({name: True for name, on in options.items() if on})
    return parts


def _digest(parts: dict, interactive: InteractiveSettings | None = None) -> str:
    if interactive is not None:
        parts = {**parts, "interactive": asdict(interactive)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _read_log(path: Path | None) -> list[tuple[str, ObjectResult]]:
    """(settings hash, row) of an earlier (interrupted) run; a line cut short or of an older format ends the
    usable log.

    A line of other rule versions (:data:`~sam4med.evaluation.rules.RULES`; none recorded: written before
    versions were) is dropped, and one warning says how many and of which versions. A (phase, strategy,
    object) logged more than once (two runs that once wrote into the same folder) is read once: the first
    line is kept, the others are dropped with one warning. The caller rewrites the log with the rows
    returned, so dropped lines leave the file too and their images are scored again.
    """
    if path is None or not path.is_file():
        return []
    rows = []
    seen: set[tuple[str, str, str]] = set()
    duplicates = 0
    outdated: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        try:
            data = json.loads(line)
            found = rules_of(data)
            if found != RULES:
                outdated[describe(found)] += 1
                continue
            data = {k: v for k, v in data.items() if k not in RULES}
            settings = data.pop("settings", None)
            if not isinstance(settings, str) or set(data) != set(COLUMNS):
                break
            row = ObjectResult(**data)
        except (ValueError, TypeError, AttributeError):  # ValueError: a cut line, or an unknown phase
            break
        key = (row.phase.value, row.strategy, row.object_key)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        rows.append((settings, row))
    if outdated:
        log.warning(
            "%s: dropped %d rows made under other rule versions (%s; this sam4med: %s): rows of other prompt or "
            "metric rules are never reused, their images are scored again",
            path,
            sum(outdated.values()),
            "; ".join(f"{n} of {versions}" for versions, n in sorted(outdated.items())),
            describe(RULES),
        )
    if duplicates:
        log.warning(
            "%s: dropped %d duplicated rows (a phase, strategy and object logged more than once, e.g. by two runs "
            "writing into one run folder); the first of each is kept and the log rewritten without the others",
            path,
            duplicates,
        )
    return rows


def _log_lines(rows: Sequence[tuple[str, ObjectResult]]) -> str:
    return "".join(json.dumps({"settings": settings, **RULES, **asdict(r)}) + "\n" for settings, r in rows)


def _resumable(
    logged: list[tuple[str, ObjectResult]], path: Path, phase: Phase, settings: Callable[[str], str]
) -> list[ObjectResult]:
    """The logged rows of ``phase``, after checking each was made with the settings of its strategy
    (``settings(row strategy)``: the hash it must carry).
    """
    other = {h for h, r in logged if r.phase == phase and h != settings(r.strategy)}
    if other:
        raise DataError(
            f"{path}: holds {phase} rows made with other settings (model, decoder, preprocessing, clipping, minimum "
            "object area, multimask, S1 grid, prompt seed or sampling, evaluation.interactive, or the compute "
            "options bf16, bf16_encoder, shared_decoder or sdpa differ, or an image or label file of the split "
            "changed); use a new run folder for new settings"
        )
    return [r for _, r in logged if r.phase == phase]


def clicks_log(log_path: Path) -> Path:
    """The clicks log beside an evaluation log: ``evaluation_log.jsonl`` -> ``evaluation_log.clicks.jsonl``."""
    return log_path.with_suffix(".clicks.jsonl")


def _read_clicks(path: Path, keep: set[tuple[str, str]]) -> str:
    """The lines of a clicks log whose (phase, object) is in ``keep`` (the first of each), as text to rewrite."""
    if not path.is_file():
        return ""
    lines, seen = [], set()
    for line in path.read_text().splitlines():
        try:
            data = json.loads(line)
            key = (data["phase"], data["object_key"])
        except (ValueError, TypeError, KeyError):  # a line cut by a kill ends the usable file
            break
        if key in keep and key not in seen:
            seen.add(key)
            lines.append(line + "\n")
    return "".join(lines)


def _click_lines(records: Sequence[ClickRecord], *, settings: str, phase: Phase, image_id: str) -> str:
    return "".join(
        json.dumps({"settings": settings, **RULES, "phase": phase.value, "image_id": image_id, **r.to_dict()}) + "\n"
        for r in records
    )


def _prompt(prompts: PromptStore, strategy: str, mask, object_key: str, interactive: InteractiveSettings) -> Prompt:
    """The saved prompt of (strategy, object); for ``I`` its start prompt, made by the interactive rule."""
    if strategy != INTERACTIVE:
        return prompts.get(mask, strategy, object_key)

    def make() -> Prompt:
        return start_prompt(mask, start=interactive.start, seed=prompts.seed, object_key=object_key)

    return check_start(prompts.get(mask, strategy, object_key, make=make), interactive.start, object_key)


def _score_image(
    model: SamModel,
    item: ImageItem,
    embedding: torch.Tensor,
    strategy: str,
    *,
    phase: Phase,
    prompts: PromptStore,
    multimask: Multimask,
    everything: EverythingMode | None,
    compute: Compute,
    interactive: InteractiveSettings,
    metrics: MetricSettings | None = None,
) -> tuple[list[ObjectResult], list[ClickRecord], tuple[str, ImagePrediction]]:
    """The rows of one image under one strategy, under ``I`` the clicks of each object (else none), and the
    predicted masks with the row strategy they belong to (under ``I`` those of the last click, ``I@<clicks>``).
    """
    size = item.image.shape[:2]
    candidates = 3 if multimask.multimask_output else 1
    if strategy == INTERACTIVE:
        loop = ClickLoop(
            model,
            embedding,
            [_prompt(prompts, strategy, m, o.key, interactive) for o, m in zip(item.objects, item.masks, strict=True)],
            item.masks,
            object_keys=[o.key for o in item.objects],
            seed=prompts.seed,
            settings=interactive,
            multimask=multimask,
            compute=compute,
        )
        rows = []
        step = None
        for _ in range(interactive.clicks):
            step = loop.step()
            rows += score_objects(
                phase=phase,
                strategy=click_strategy(step.click),
                objects=item.objects,
                gt_masks=item.masks,
                pred_masks=step.masks,
                scores=step.scores,
                candidates=candidates,
                spacing=item.record.spacing,
                metrics=metrics,
            )
        assert step is not None  # InteractiveSettings: at least one click
        last = (click_strategy(step.click), ImagePrediction.of(item.objects, step.masks, step.scores))
        return rows, loop.records(), last
    if strategy == "S1":
        assert everything is not None
        generated = everything(embedding, size)
        matched = match_masks(generated, item.masks)
        masks, scores, candidates = matched.masks, matched.scores, len(generated.masks)
    else:
        batch = [prompts.get(m, strategy, o.key) for o, m in zip(item.objects, item.masks, strict=True)]
        pred = predict_scored(model, embedding, batch, size, multimask=multimask, compute=compute, gt_masks=item.masks)
        masks, scores = pred.masks, pred.scores
    rows = score_objects(
        phase=phase,
        strategy=strategy,
        objects=item.objects,
        gt_masks=item.masks,
        pred_masks=masks,
        scores=scores,
        candidates=candidates,
        spacing=item.record.spacing,
        metrics=metrics,
    )
    return rows, [], (strategy, ImagePrediction.of(item.objects, masks, scores))


def s1_empty_images(rows: Sequence[ObjectResult]) -> tuple[int, int]:
    """(images where S1 generated no mask at all, images scored under S1)."""
    images = {(r.phase, r.image_id): r.candidates for r in rows if r.strategy == "S1"}
    return sum(1 for c in images.values() if c == 0), len(images)


def score_dataset(
    model: SamModel,
    dataset: CosmosDataset,
    *,
    strategies: Sequence[str],
    phase: Phase,
    cache: EmbeddingCache,
    prompts: PromptStore,
    multimask: Multimask,
    everything: EverythingSettings,
    compute: Compute | None = None,
    log_path: str | Path | None = None,
    progress: bool = True,
    zero_shot_store: ZeroShotStore | None = None,
    interactive: InteractiveSettings | None = None,
    metrics: MetricSettings | None = None,
    predictions: PredictionFiles | None = None,
) -> list[ObjectResult]:
    """Score every object of every image in ``dataset`` under each strategy.

    Args:
        model: the model to evaluate (its decoder may be fine-tuned).
        dataset: images and objects to score.
        strategies: any of ``S1`` ... ``S6`` and ``I``, e.g. ``["S5", "I"]`` (checked by
            :class:`~sam4med.evaluation.settings.EvaluationSettings`); ``I`` writes the rows ``I@1`` ...
            ``I@<clicks>``.
        phase: the phase the rows are labelled with (:class:`~sam4med.evaluation.rows.Phase`).
        cache: embedding cache.
        prompts: prompt store (S2–S6, and the start prompts of ``I``); prompts it holds are reused, new ones
            are added to it.
        multimask: mask selection for S2–S6 and every click of ``I``, see
            :class:`~sam4med.models.multimask.Multimask` (S1 always uses all three multimask outputs of every
            grid point, as SAM's generator does).
        everything: S1 generator settings (grid, filters).
        compute: how to decode (the device is the model's; None: the defaults): ``prompts_per_call``
            prompts (S2–S6) or grid points (S1) per decoder call (None: sized for the device, see
            :func:`~sam4med.evaluation.decoding.prompts_per_call`, under S2–S6 and
            ``everything.points_per_batch`` under S1; masks do not depend on it); ``bf16`` autocast of
            the decoder (a GPU option; the image encoder is not autocast); ``shared_decoder``: S2–S6
            through :mod:`sam4med.models.shared_decoder` (S1 always prefilters with it and decodes its
            survivors with SAM's).
        log_path: JSON-lines file of finished rows (resumable); None keeps rows in memory only.
        progress: show a progress bar over images.
        zero_shot_store: rows shared between runs (:class:`~sam4med.evaluation.zero_shot_store.ZeroShotStore`),
            read and written for the zero-shot phase only; None scores everything here.
        interactive: the iterative-click settings of ``I`` (None: :class:`InteractiveSettings` defaults).
        predictions: where each image's predicted masks are kept (saved masks, volume scores; see
            :mod:`sam4med.evaluation.predictions`), written before its rows are logged: under ``I`` the masks of
            the last click (``I@<clicks>``). An image whose rows are logged (or in the zero-shot store) but whose
            masks are not kept is decoded again for its masks, its rows not added twice. None keeps no masks.
        metrics: NSD tolerance and rule of the rows (None: :class:`~sam4med.evaluation.scoring.MetricSettings`
            defaults); part of the settings hash, so rows of another tolerance or rule are never reused.
    """
    phase = Phase.parse(phase)
    compute = compute or Compute()
    path = Path(log_path) if log_path else None
    interactive = interactive or InteractiveSettings()
    parts = _settings_parts(
        model,
        dataset,
        prompts,
        phase=phase,
        multimask=multimask,
        everything=everything,
        bf16=compute.bf16,
        shared_work=compute.shared_decoder,
        metrics=metrics,
    )
    hashed = {"S": _digest(parts), INTERACTIVE: _digest(parts, interactive)}  # I's rows: also the click settings

    def settings_of(strategy: str) -> str:  # the settings hash of a strategy (S1 ... S6, I) or row strategy (I@k)
        return hashed[INTERACTIVE if strategy.split("@")[0] == INTERACTIVE else "S"]

    logged = _read_log(path)
    # a logged row also depends on its image's content (the store keys rows by each image's own fingerprint)
    content = dataset.content_hash() if path is not None else None

    def logged_as(strategy: str) -> str:
        return f"{settings_of(strategy)}/{content}" if content is not None else settings_of(strategy)

    results = _resumable(logged, path, phase, logged_as) if path is not None else []
    if path is not None and path.is_file():  # drop a cut or outdated tail, so appended rows stay readable
        write_text(path, _log_lines(logged))
    clicks_path = clicks_log(path) if path is not None else None
    if clicks_path is not None and clicks_path.is_file():  # only the clicks of logged rows (the rest is redone)
        clicked = {(r.phase.value, r.object_key) for _, r in logged if r.strategy.split("@")[0] == INTERACTIVE}
        write_text(clicks_path, _read_clicks(clicks_path, clicked))
    done = {(r.image_id, r.strategy) for r in results}
    expands = {s: row_strategies(s, interactive.clicks) for s in strategies}

    def masks_missing(image_id: str, strategy: str) -> bool:  # kept masks: a strategy's last row strategy
        return predictions is not None and not predictions.has(phase, expands[strategy][-1], image_id)

    # the masks of rows read back are decoded again only with the decoder the rows were made with: a zero-shot
    # phase read back while a trained decoder is loaded (training resumed) keeps the masks it has, and says so
    redecode = predictions is not None and (
        phase not in BASE_DECODER_PHASES or model.base_decoder_hash in (None, model.module_hash(model.mask_decoder))
    )
    unmasked = 0

    def decode_for_masks(image_id: str, strategy: str) -> bool:  # rows at hand (log, store), masks to be decoded
        return redecode and masks_missing(image_id, strategy)

    store = zero_shot_store if phase in BASE_DECODER_PHASES else None  # fine-tuned rows are a run's own
    store_hits, store_outdated = (store.hits, store.outdated) if store is not None else (0, 0)
    model.eval()
    s1 = EverythingMode(model, everything, per_call=compute.prompts_per_call) if "S1" in strategies else None
    hits, misses, embed_seconds = cache.hits, cache.misses, 0.0
    saved_at = time.perf_counter()
    bar = tqdm(total=len(dataset), desc=f"evaluate {phase}", unit="img", disable=not progress)
    for start in range(0, len(dataset), cache.batch_size):  # images in chunks of one encoder call
        stop = min(start + cache.batch_size, len(dataset))
        work = []  # (image, strategies still to score)
        for index in range(start, stop):
            image_id = dataset.records[index].image_id
            have_rows = [s for s in strategies if all((image_id, r) in done for r in expands[s])]
            unmasked += sum(1 for s in have_rows if not redecode and masks_missing(image_id, s))
            todo = [s for s in strategies if s not in have_rows or decode_for_masks(image_id, s)]
            item = dataset[index] if todo else None
            if item is not None and item.objects:
                work.append((item, todo))

        # embeddings of the images with a strategy the zero-shot store cannot answer, encoded together
        def store_answers(it: ImageItem, s: str) -> bool:  # the store holds the rows, and the masks if needed
            return (
                store is not None
                and store.has(settings_of(s), it, s)
                and (not decode_for_masks(it.record.image_id, s) or store.has_prediction(settings_of(s), it, s))
            )

        need = [it for it, todo in work if not all(store_answers(it, s) for s in todo)]
        timer = time.perf_counter()
        found = cache.get_many(model, [it.image for it in need])
        embeddings = {id(it): embedding for it, (_, embedding) in zip(need, found, strict=True)}
        embed_seconds += time.perf_counter() - timer
        for item, todo in work:
            new_rows, new_clicks = [], []
            for strategy in todo:
                bar.set_postfix_str(strategy)
                clicking = strategy == INTERACTIVE
                # rows already logged: decoded again for its masks only
                rows_logged = all((item.record.image_id, r) in done for r in expands[strategy])
                stored = (
                    store.load(settings_of(strategy), item, strategy, phase, rows=expands[strategy], clicks=clicking)
                    if store is not None and store_answers(item, strategy)
                    else None
                )
                kept = None  # the stored masks this run needs
                if stored is not None and decode_for_masks(item.record.image_id, strategy):
                    assert store is not None
                    kept = store.prediction(settings_of(strategy), item, strategy)
                    stored = stored if kept is not None else None
                if stored is not None:
                    if kept is not None:
                        assert predictions is not None
                        predictions.write(phase, expands[strategy][-1], item.record.image_id, kept)
                    if rows_logged:
                        continue
                    if strategy != "S1":  # the run's prompts file still holds every prompt its rows were made with
                        for obj, mask in zip(item.objects, item.masks, strict=True):
                            _prompt(prompts, strategy, mask, obj.key, interactive)
                    new_rows += stored.rows
                    new_clicks += [ClickRecord.from_dict(c) for c in stored.clicks or ()]
                    continue
                if id(item) not in embeddings:  # a stored file that turned out unusable
                    embeddings[id(item)] = cache.get(model, item.image)
                with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=compute.bf16):
                    rows, clicks, (kept_as, prediction) = _score_image(
                        model,
                        item,
                        embeddings[id(item)],
                        strategy,
                        phase=phase,
                        prompts=prompts,
                        multimask=multimask,
                        everything=s1,
                        compute=compute,
                        interactive=interactive,
                        metrics=metrics,
                    )
                if predictions is not None:
                    predictions.write(phase, kept_as, item.record.image_id, prediction)
                if rows_logged:
                    continue
                if store is not None:
                    records = [c.to_dict() for c in clicks] if clicking else None
                    store.put(settings_of(strategy), item, strategy, rows, clicks=records, prediction=prediction)
                new_rows += rows
                new_clicks += clicks
            if time.perf_counter() - saved_at >= PROMPT_SAVE_SECONDS:
                prompts.save()
                saved_at = time.perf_counter()
            if path is not None:  # each image's rows as it finishes, so a killed run resumes from them
                path.parent.mkdir(parents=True, exist_ok=True)
                if new_clicks:  # before the rows: a logged I row always has its clicks logged
                    with clicks_log(path).open("a") as handle:
                        lines = _click_lines(
                            new_clicks, settings=logged_as(INTERACTIVE), phase=phase, image_id=item.record.image_id
                        )
                        handle.write(lines)
                with path.open("a") as handle:
                    handle.write(_log_lines([(logged_as(r.strategy), r) for r in new_rows]))
            results += new_rows
        bar.update(stop - start)
    bar.close()
    prompts.save()
    reused, computed = cache.hits - hits, cache.misses - misses
    log.info(
        "%s: image embeddings: %d reused from the cache, %d computed (%.1f s getting them)",
        phase,
        reused,
        computed,
        embed_seconds,
    )
    if store is not None and store.hits > store_hits:
        log.info(
            "%s: %d (image, strategy) results reused from %s (same images and settings)",
            phase,
            store.hits - store_hits,
            store.directory,
        )
    if store is not None and store.outdated > store_outdated:
        log.warning(
            "%s: %d (image, strategy) results in %s were made under other rule versions (this sam4med: %s) and "
            "were scored again, never reused",
            phase,
            store.outdated - store_outdated,
            store.directory,
            describe(RULES),
        )
    if unmasked:
        log.warning(
            "%s: %d (image, strategy) results read back from %s have no kept masks (%s) and cannot be decoded again "
            "with the decoder now loaded; their slices count as not scored in the saved masks and volume scores",
            phase,
            unmasked,
            path,
            predictions.folder if predictions is not None else "",
        )
    if s1 is not None:
        empty, images = s1_empty_images(results)
        log.info("%s: S1 generated no mask on %d of %d images (their objects score Dice 0)", phase, empty, images)
    return results
