"""Overlays draw the mask that was scored: same prompts, same decoding path and options."""

import numpy as np

from sam4med.compute import Compute
from sam4med.data.dataset import CosmosDataset
from sam4med.embeddings import EmbeddingCache
from sam4med.evaluation.everything import EverythingSettings
from sam4med.evaluation.predict import predict
from sam4med.evaluation.rows import Phase
from sam4med.evaluation.session import EvaluationSession
from sam4med.evaluation.settings import EvaluationSettings
from sam4med.metrics import dice
from sam4med.prompts.prompt import Prompt
from sam4med.results.figures import save_figure
from sam4med.results.frame import to_frame
from sam4med.results.overlays import Example, overlay_figure, predict_examples, select_examples
from sam4med.run_files import ResultsFolder


def test_a_drawn_mask_is_the_scored_one_with_the_shared_decoder_and_bf16(tiny_model, synthetic_root, tmp_path):
    compute = Compute(shared_decoder=True, bf16=True, prompts_per_call=2)
    settings = EvaluationSettings.build(
        strategies=["S4", "S6"], multimask="confidence", everything=EverythingSettings(), compute=compute
    )
    session = EvaluationSession(ResultsFolder(tmp_path), settings, cache=EmbeddingCache(None))
    dataset = CosmosDataset(synthetic_root)
    rows = session.score(tiny_model, dataset, phase=Phase.ZERO_SHOT, log=False, progress=False)
    frame = to_frame(rows)
    examples = select_examples(frame, "S6", max_targets=16)
    predicted = predict_examples(tiny_model, dataset, examples, decoders={Phase.ZERO_SHOT: None}, session=session)
    scored = {r.object_key: r.dice for r in rows if r.strategy == "S6"}
    assert len(predicted) == len({e.object_key for e in examples}) > 3
    for key, (_, gt, _, masks) in predicted.items():
        assert dice(masks[Phase.ZERO_SHOT], gt) == scored[key], key

    # the check can fail: decoded the plain way (float32, segment_anything's decoder), some masks differ
    differ = 0
    for image, _, prompt, masks in predicted.values():
        embedding = session.cache.get(tiny_model, image)
        plain = predict(tiny_model, embedding, [prompt], image.shape[:2], multimask=settings.multimask)
        differ += not np.array_equal(plain.masks[0], masks[Phase.ZERO_SHOT])
    assert differ > 0


def test_a_one_pixel_image_is_drawn(tmp_path):
    image, mask = np.zeros((1, 1, 3), np.uint8), np.ones((1, 1), bool)
    prompt = Prompt("S6", point_coords=((0.0, 0.0),), point_labels=(1,), box=(0, 0, 0, 0))
    example = Example("t", "typical", "i", "k", "S6")
    fig = overlay_figure(
        "t", [(example, (image, mask, prompt, {Phase.ZERO_SHOT: mask}))], {(Phase.ZERO_SHOT, "k"): 1.0}
    )
    assert save_figure(fig, tmp_path, "one_pixel").stat().st_size > 0
