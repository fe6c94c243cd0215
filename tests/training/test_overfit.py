"""Training produces a useful model: from random weights, a small network overfits a few
images of triangles (asymmetric, so a transposed or flipped mask target cannot score) to mask
AP@0.5 >= 0.8 on those images, within well under a minute on two CPU cores."""

from __future__ import annotations

from mrcnn.evaluation import evaluate_dataset
from tests.helpers.trained_shapes import trained_model, trained_triangles, triangles


def test_training_overfits_a_few_triangles():
    dataset = triangles(3)
    assert {int(c) for i in dataset.image_ids for c in dataset.load_mask(i)[1]} == {3}
    _, seconds = trained_triangles()
    evaluation = evaluate_dataset(trained_model(), dataset, iou_thresholds=(0.5,), progress=False)
    assert evaluation.map50 >= 0.8, (
        f"mask AP@0.5 {evaluation.map50:.3f} after {seconds:.0f} s of training; per image "
        f"{evaluation.image_aps[0.5].round(2).tolist()}"
    )
