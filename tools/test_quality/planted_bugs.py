"""Plant each bug a test is named after and check that the test catches it.

For every case this script copies the tracked files of the repository into a temporary folder,
runs the one test there on the real code (it must PASS), replaces one snippet of library code
with its buggy version (the working tree is never touched), runs the test again (it must FAIL),
and prints a table. Exit status 1 when any test misses its bug or fails on the real code.

    python -m tools.test_quality.planted_bugs          # every case (several minutes on 2 cores)
    python -m tools.test_quality.planted_bugs --only resume --only exclusive
    python -m tools.test_quality.planted_bugs --list
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Case:
    test: str  # pytest node id, relative to the repository root
    bug: str  # what the planted bug does, in words
    path: str  # the file it is planted in
    old: str  # the real code (must occur exactly once)
    new: str  # the buggy code


TRAINER = "mrcnn/training/trainer.py"
CASES = [
    Case(
        "tests/training/test_trainer.py::test_resume_continues_epochs_run_folder_and_optimizer",
        "optimiser state not restored on resume",
        TRAINER,
        'state = extras.pop("optimizer", None) if extras else None',
        "state = None",
    ),
    Case(
        "tests/training/test_trainer.py::test_resume_continues_epochs_run_folder_and_optimizer",
        "warm-up runs again after resuming",
        TRAINER,
        "self.warmup = 0 if self._restore_optimizer() else int(self.config.WARMUP_STEPS)",
        "self.warmup = int(self.config.WARMUP_STEPS) + 0 * self._restore_optimizer()",
    ),
    Case(
        "tests/training/test_trainer.py::test_bf16_autocast_step_on_cpu",
        "autocast switched off",
        TRAINER,
        "enabled=bool(self.amp)",
        "enabled=False",
    ),
    *(
        Case(
            f"tests/test_cuda.py::test_training_steps_on_cuda_then_loading_on_the_cpu[{amp}]",
            f"autocast switched off (CUDA, {amp})",
            TRAINER,
            "enabled=bool(self.amp)",
            "enabled=False",
        )
        for amp in ("bf16", "fp16")
    ),
    Case(
        "tests/weights/test_loading.py::test_exclude_given_as_a_single_string",
        "a string exclude is ignored",
        "mrcnn/weights/loading.py",
        "exclude = [exclude] if isinstance(exclude, str) else list(exclude)",
        "exclude = [] if isinstance(exclude, str) else list(exclude)",
    ),
    Case(
        "tests/test_samples.py::test_exclusive_masks_give_overlaps_to_the_best_score",
        "overlaps go to the largest mask, not the best score",
        "samples/nucleus.py",
        'order = np.argsort(-np.asarray(scores), kind="stable")',
        'order = np.argsort(-masks.sum(axis=(0, 1)), kind="stable")',
    ),
    Case(
        "tests/commands/test_splash.py::test_class_selection_by_name_from_the_checkpoint",
        "--classes filter dropped",
        "mrcnn/commands/splash.py",
        '"classes": classes,',
        '"classes": None,',
    ),
    Case(
        "tests/commands/test_evaluate.py::test_evaluate_end_to_end_writes_loadable_results",
        "written JSON differs from the evaluated detections",
        "mrcnn/commands/evaluate.py",
        "write_output(output, json.dumps(evaluation.coco_results))",
        "write_output(output, json.dumps(evaluation.coco_results[1:]))",
    ),
    Case(
        "tests/commands/test_evaluate.py::test_evaluate_end_to_end_writes_loadable_results",
        "COCO bbox written as (y, x, h, w)",
        "mrcnn/evaluation/coco.py",
        "return np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)",
        "return np.stack([y1, x1, y2 - y1, x2 - x1], axis=1)",
    ),
    Case(
        "tests/structures/test_image.py::test_read_image",
        "EXIF orientation 6 turned counter-clockwise",
        "mrcnn/structures/image.py",
        "pil = ImageOps.exif_transpose(pil)",
        "pil = pil.transpose(Image.Transpose.ROTATE_90) if pil.getexif().get(0x0112) == 6 "
        "else ImageOps.exif_transpose(pil)",
    ),
    Case(
        "tests/datasets/test_base.py::test_exif_orientation_applied_to_image_and_size",
        "EXIF orientation 6 turned counter-clockwise",
        "mrcnn/structures/image.py",
        "pil = ImageOps.exif_transpose(pil)",
        "pil = pil.transpose(Image.Transpose.ROTATE_90) if pil.getexif().get(0x0112) == 6 "
        "else ImageOps.exif_transpose(pil)",
    ),
    Case(
        "tests/structures/test_image.py::test_apply_plan_nearest_for_label_maps",
        "label maps interpolated (bilinear, rounded) instead of nearest",
        "mrcnn/structures/image.py",
        "image = F.interpolate(image[None], size=plan.resized_shape, mode=mode, **kwargs)[0]",
        "image = F.interpolate(image[None], size=plan.resized_shape, mode='bilinear', "
        "align_corners=True)[0].round()",
    ),
    Case(
        "tests/training/test_augment.py::test_default_augmentation_is_consistent",
        "default augmentation is the identity",
        "mrcnn/training/augment.py",
        "return v2.Compose(steps)",
        "return v2.Compose([v2.Identity()])",
    ),
    Case(
        "tests/training/test_options.py::test_augmentation_is_applied_to_training_batches_only",
        "augmentation= ignored",
        TRAINER,
        "self._loader(train_dataset, aug, int(self.config.STEPS_PER_EPOCH))",
        "self._loader(train_dataset, None, int(self.config.STEPS_PER_EPOCH))",
    ),
    Case(
        "tests/training/test_options.py::test_augmentation_is_applied_to_training_batches_only",
        "augmentation also applied to validation",
        TRAINER,
        "self._loader(val_dataset, None, int(self.config.VALIDATION_STEPS))",
        "self._loader(val_dataset, aug, int(self.config.VALIDATION_STEPS))",
    ),
    Case(
        "tests/test_maskrcnn_batching.py::test_mixed_size_batch_equals_one_image_at_a_time[pad64]",
        "every image of a batch unmolded with the first image's geometry",
        "mrcnn/maskrcnn.py",
        "self.unmold_one(found, i, meta, batch.shape[-2:], mask_format)",
        "self.unmold_one(found, i, metas[0], batch.shape[-2:], mask_format)",
    ),
    Case(
        "tests/test_maskrcnn_batching.py::test_mixed_size_batch_equals_one_image_at_a_time[none]",
        "images of different sizes padded into one batch",
        "mrcnn/maskrcnn.py",
        "for group in same_input_groups(images, self.config):",
        "for group in [list(range(len(images)))]:",
    ),
    Case(
        "tests/training/test_overfit.py::test_training_overfits_a_few_triangles",
        "mask targets transposed",
        "mrcnn/modeling/targets.py",
        "aligned=True)\n    return (crops[:, 0] >= 0.5).to(masks.dtype)",
        "aligned=True)\n    return (crops[:, 0] >= 0.5).to(masks.dtype).transpose(1, 2)",
    ),
    Case(
        "tests/test_demo.py::test_demo_writes_report_pictures_and_video",
        "splash pictures ignore the detected masks",
        "mrcnn/demo.py",
        "splash = color_splash(big, masks)",
        "splash = color_splash(big, masks[..., :0])",
    ),
    Case(
        "tests/test_demo.py::test_demo_writes_report_pictures_and_video",
        "pictures of only the first two validation scenes",
        "mrcnn/demo.py",
        "count: int = 4",
        "count: int = 2",
    ),
    Case(
        "tests/test_demo.py::test_demo_writes_report_pictures_and_video",
        "validation loss left out of the losses table",
        "mrcnn/demo.py",
        'if "val_loss" in r:',
        "if False:",
    ),
]


def copy_tracked_files(destination: Path) -> None:
    """The repository's tracked files (as in the working tree) under ``destination``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (item.decode() for item in listed)):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def run_test(copy: Path, test: str) -> tuple[str, str]:
    """PASS or FAIL (or ERROR/SKIP with pytest's exit code) of one test, and the first line
    of pytest's explanation of a failure ("E   ...")."""
    environment = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", test],
        cwd=copy,
        env=environment,
        capture_output=True,
        text=True,
    )
    if done.returncode == 0:
        skipped = " skipped" in done.stdout.splitlines()[-1] and " passed" not in done.stdout
        return ("SKIP" if skipped else "PASS"), ""
    why = next((line[1:].strip() for line in done.stdout.splitlines() if line.startswith("E ")), "")
    return ("FAIL" if done.returncode == 1 else f"ERROR({done.returncode})"), why


def check(case: Case, copy: Path) -> tuple[str, str, str]:
    """(result with the bug planted, result on the real code, why it failed with the bug)."""
    target = copy / case.path
    real = target.read_text()
    if real.count(case.old) != 1:
        raise SystemExit(
            f"{case.path}: the snippet to replace for {case.test!r} occurs "
            f"{real.count(case.old)} times (must be once); update CASES in {__file__}"
        )
    without, _ = run_test(copy, case.test)
    if without == "SKIP":  # nothing to learn from planting the bug
        return "SKIP", without, ""
    target.write_text(real.replace(case.old, case.new))
    try:
        with_bug, why = run_test(copy, case.test)
    finally:
        target.write_text(real)
    return with_bug, without, why


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.test_quality.planted_bugs", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="cases whose test or bug contains this text (repeatable)",
    )
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument(
        "--why", action="store_true", help="print pytest's first explanation line under each row"
    )
    args = parser.parse_args(argv)
    cases = [c for c in CASES if not args.only or any(o in c.test + c.bug for o in args.only)]
    if args.list or not cases:
        for case in cases:
            print(f"{case.test}  --  {case.bug}")
        return 0 if cases else 1
    rows, ok = [], True
    with tempfile.TemporaryDirectory(prefix="planted_bugs_") as folder:
        copy = Path(folder)
        copy_tracked_files(copy)
        width = max(len(c.test) for c in cases) - len("tests/")
        print(f"{'test':<{width}} {'planted bug':<62} {'with bug':>9} {'without':>8}")
        for case in cases:
            with_bug, without, why = check(case, copy)
            good = with_bug == "FAIL" and without == "PASS"
            not_run = without == "SKIP"  # e.g. the CUDA tests on a machine without a GPU
            ok &= good or not_run
            name = case.test.replace("tests/", "")
            rows.append((name, case.bug, with_bug, without))
            if not_run:
                flag = "  (not run here: the test skips)"
            else:
                flag = "" if good else "  <-- the test does not catch it"
            print(f"{name:<{width}} {case.bug:<62} {with_bug:>9} {without:>8}{flag}", flush=True)
            if args.why and why:
                print(f"    {why[:150]}", flush=True)
    skipped = sum(r[3] == "SKIP" for r in rows)
    print(
        f"{sum(r[2] == 'FAIL' and r[3] == 'PASS' for r in rows)} of {len(rows) - skipped} planted "
        "bugs caught (FAIL with the bug, PASS without)"
        + (f"; {skipped} not run (their test skips here)" if skipped else "")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
