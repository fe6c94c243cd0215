"""Copies a few Keras reference results made by make_reference.py into the committed test
fixture tests/fixtures/matterport/ (numpy + h5py only; no TensorFlow needed for this step).

    python -m tools.matterport_reference.make_fixture --ref /work/mmref   # from the repository root

`<model>.npz` holds everything h5_models.write_matterport_h5 needs to rebuild the
model's .h5 from its seed (Config overrides, seed, output scales, background logit, class-logit
projection, layer manifest) and the sha1 of the weights Keras saved, so the test can tell a
rebuilt file that differs. `<model>__<photo>.npz` is one case: the Keras detections (masks as
packed bits), the photo (a balloon val file name and crop, with the sha1 of its pixels), the .h5
layout the test writes and whether the case is slow.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tools.matterport_reference import h5_models as mh5

REPO = Path(__file__).resolve().parents[2]

# (model, photo, .h5 layout the test writes, slow). Balloon photos only: Matterport's sample
# images are not ours to commit and /work/shared data is reached at test time.
CASES = [
    ("r50_c2_512", "balloon_410488422_crop512", "tf-keras-2", False),
    ("r50_c2_512", "balloon_3825919971_crop512", "tf-keras-2", False),
    ("r50_c2_512", "balloon_410488422_native", "keras-2.2", False),
    ("r50_c4_512", "balloon_5555705118_crop512", "model-save", False),
    ("r101_c81_1024", "balloon_14898532020_crop1024", "tf-keras-2", True),
    ("r101_c81_1024", "balloon_410488422_native", "keras-2.2", True),
]

# photo name -> (balloon val file, crop (y, x, h, w) or None); as in make_reference.PHOTOS.
PHOTOS = {
    "balloon_410488422_crop512": ("410488422_5f8991f26e_b.jpg", (128, 256, 512, 512)),
    "balloon_410488422_native": ("410488422_5f8991f26e_b.jpg", None),
    "balloon_3825919971_crop512": ("3825919971_93fb1ec581_b.jpg", (300, 85, 512, 512)),
    "balloon_5555705118_crop512": ("5555705118_3390d70abe_b.jpg", (256, 85, 512, 512)),
    "balloon_14898532020_crop1024": ("14898532020_ba6199dd22_k.jpg", (170, 512, 1024, 1024)),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tools.matterport_reference.make_fixture",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--ref", type=Path, default=Path("/work/mmref"))
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures" / "matterport")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for model in sorted({case[0] for case in CASES}):
        info = json.loads((args.ref / "models" / f"{model}.json").read_text())
        path = args.out / f"{model}.npz"
        np.savez_compressed(
            path,
            config_json=np.array(json.dumps(info["config"])),
            seed=np.array(info["seed"]),
            output_scales_json=np.array(json.dumps(info["output_scales"])),
            background_logit=np.array(info["background_logit"]),
            class_logit_projection=np.array(info["class_logit_projection"], dtype=np.float32),
            manifest_json=np.array(info["manifest"]),
            weights_sha1=np.array(mh5.weights_digest(args.ref / "models" / f"{model}.h5")),
        )
        print(f"{path.relative_to(REPO)}: model, {path.stat().st_size / 1024:.0f} KiB")
    for model, photo, layout, slow in CASES:
        detections = dict(np.load(args.ref / "detections" / f"{model}__{photo}.npz"))
        file_name, crop = PHOTOS[photo]
        path = args.out / f"{model}__{photo}.npz"
        np.savez_compressed(
            path,
            **detections,
            model=np.array(model),
            layout=np.array(layout),
            photo_file=np.array(file_name),
            photo_crop=np.array(crop if crop else [], dtype=np.int32),
            slow=np.array(slow),
        )
        n, kib = len(detections["scores"]), path.stat().st_size / 1024
        print(f"{path.relative_to(REPO)}: {n} detections, {kib:.0f} KiB")


if __name__ == "__main__":
    main()
