"""Active learning, simulated: do the photos ``mrcnn rank`` picks help more than random ones?

Setup. Generated shapes (the demo's 128 x 128 scenes) with one hard sub-population: in a hard
scene every shape is small (half-side or radius HARD_SIZE pixels instead of 16-32) or of low
contrast (colour distance LOW_CONTRAST from the background instead of >= 80). The pool holds
``--pool`` scenes, ``--pool-hard`` of them hard; ``--initial`` of them, drawn at random, are
labelled to start. Each round adds ``--per-round`` scenes of the pool, chosen either by the
ranking of :mod:`mrcnn.labelling.rank` (signals of the current model; diversity against the
labelled scenes) or at random, and trains on. The validation set is fixed (the same scenes for
every seed and arm: ``--val`` scenes, ``--val-hard`` of them hard).

Training: the demo's config (ShapesDemoConfig) and recipe (all layers, its learning rate, no
augmentation), ``--budget`` steps per round (default: the demo's budget, DEMO_EPOCHS epochs of
STEPS_PER_EPOCH steps). Round 0 trains from random weights; each later round continues from the
previous round's weights of the same arm (both arms start from the same round-0 model), so that
the arms differ only in the scenes they chose.

Figures: mask mAP@0.5 on the validation scenes per round and arm with 95% bootstrap intervals
(``mrcnn evaluate --bootstrap``'s, resampling the validation scenes), the mAP on the hard
scenes, how many hard scenes each arm had labelled, and the last round's difference rank -
random averaged over seeds, with a paired bootstrap interval (the seeds' per-scene AP
differences averaged, the scenes resampled). The target is a difference >= TARGET.

    python -m benchmarks.active_learning                       # 3 seeds, 3 rounds, the demo budget
    python -m benchmarks.active_learning --seeds 1 --rounds 1 --budget 20 --pool 40 --val 10
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mrcnn.datasets.shapes import ShapesDataset, random_image_spec
from mrcnn.demo import DEMO_EPOCHS, DEMO_IMAGE_SIZE, ShapesDemoConfig
from mrcnn.evaluation import evaluate_dataset
from mrcnn.evaluation.bootstrap import Bootstrap, mean_samples
from mrcnn.labelling.rank import greedy_order, uncertainty
from mrcnn.labelling.signals import network_pass, pooled_features, signals_of
from mrcnn.maskrcnn import MaskRCNN

#: Half-side or radius of a small shape, pixels (normal shapes: 16-32 at 128 pixels).
HARD_SIZE = (4, 8)
#: Colour distance of a low-contrast shape from its background (normal: at least 80).
LOW_CONTRAST = (16.0, 30.0)
#: The mask mAP@0.5 gain of rank over random at the last round the benchmark aims at.
TARGET = 0.03
#: Seed of the validation scenes (the same for every seed of the run).
VAL_SEED = 1000


# ------------------------------------------------------------------------------------------------
# Scenes
# ------------------------------------------------------------------------------------------------
def hard_scene(rng: np.random.Generator, size: int) -> tuple:
    """A scene of the shapes generator whose every shape is made small or of low contrast."""
    background, shapes = random_image_spec(rng, size, size, 4)
    out = []
    for name, color, (x, y, radius) in shapes:
        if rng.random() < 0.5:
            radius = int(rng.integers(HARD_SIZE[0], HARD_SIZE[1] + 1))
        else:
            direction = rng.normal(size=3)
            direction /= max(np.linalg.norm(direction), 1e-9)
            step = direction * rng.uniform(*LOW_CONTRAST)
            color = tuple(int(c) for c in np.clip(np.asarray(background) + step, 0, 255))
        out.append((name, color, (x, y, radius)))
    return background, out


def scenes(count: int, hard: int, seed: int, stream: int) -> list[tuple]:
    """``count`` (background, shapes, is_hard) scenes, ``hard`` of them hard, shuffled."""
    flags = np.zeros(count, dtype=bool)
    which = np.random.default_rng([seed, stream, 1]).choice(count, min(hard, count), replace=False)
    flags[which] = True
    rng = np.random.default_rng([seed, stream, 2])  # the scenes' contents
    made = []
    for flag in flags:
        maker = hard_scene if flag else _normal_scene
        background, shapes = maker(rng, DEMO_IMAGE_SIZE)
        made.append((background, shapes, bool(flag)))
    return made


def _normal_scene(rng: np.random.Generator, size: int) -> tuple:
    return random_image_spec(rng, size, size, 4)


def dataset_of(chosen: list[tuple]) -> ShapesDataset:
    """A prepared shapes dataset of the given scenes (drawn by the generator's own loaders)."""
    dataset = ShapesDataset()
    for class_id, name in enumerate(("square", "circle", "triangle"), start=1):
        dataset.add_class("shapes", class_id, name)
    for index, (background, shapes, hard) in enumerate(chosen):
        dataset.add_image(
            "shapes",
            index,
            None,
            width=DEMO_IMAGE_SIZE,
            height=DEMO_IMAGE_SIZE,
            bg_color=background,
            shapes=shapes,
            format="shapes",
            hard=hard,
        )
    dataset.prepare()
    return dataset


# ------------------------------------------------------------------------------------------------
# Training, evaluation, choosing
# ------------------------------------------------------------------------------------------------
@dataclass
class Figures:
    """One model's figures on the validation scenes."""

    map50: float
    low: float
    high: float
    hard_map50: float
    image_aps: np.ndarray
    hard_labelled: int = 0


def train_round(model: MaskRCNN, train: ShapesDataset, seed: int) -> None:
    """One round's training: one epoch of STEPS_PER_EPOCH (= the budget) steps, continuing
    the model's weights."""
    torch.manual_seed(seed)
    model.train(train, None, model.config.LEARNING_RATE, epochs=model.epoch + 1, layers="all")


def evaluate(model: MaskRCNN, val: ShapesDataset, resamples: int) -> Figures:
    evaluation = evaluate_dataset(
        model,
        val,
        iou_thresholds=(0.5,),
        progress=False,
        coco_results=False,
        bootstrap=Bootstrap(resamples),
    )
    interval = evaluation.intervals["mean_ap"][0.5]
    aps = evaluation.image_aps[0.5]
    hard = np.array([val.image_info[i]["hard"] for i in evaluation.image_ids])
    hard_map = float(aps[hard].mean()) if hard.any() else float("nan")
    return Figures(evaluation.map50, interval.low, interval.high, hard_map, aps)


def pick_by_rank(model, pool: ShapesDataset, left: list[int], labelled: list[int], count: int):
    """The ``count`` scenes of ``left`` that :func:`mrcnn.labelling.rank.greedy_order` puts
    first (signals of ``model``; the ``labelled`` scenes as the diversity reference)."""
    found = [signals_of(network_pass(model, pool.load_image(i))) for i in left]
    reference = np.stack([pooled_features(model, pool.load_image(i)) for i in labelled])
    features = np.stack([s.feature for s in found])
    order = greedy_order([uncertainty(s) for s in found], features, reference)
    return [left[p.index] for p in order[:count]]


@dataclass
class Arm:
    """One arm of one seed: its model, labelled scenes and figures per round."""

    name: str
    model: MaskRCNN
    labelled: list[int]
    figures: list[Figures] = field(default_factory=list)


def run_seed(seed: int, args: argparse.Namespace, val: ShapesDataset, say) -> dict[str, Arm]:
    """Both arms of one seed over every round; returns {"rank": Arm, "random": Arm}."""
    pool_scenes = scenes(args.pool, args.pool_hard, seed, 0)
    pool = dataset_of(pool_scenes)
    rng = np.random.default_rng([seed, 3])  # the initial and the random arm's choices
    initial = sorted(int(i) for i in rng.choice(args.pool, args.initial, replace=False))
    config = ShapesDemoConfig.from_overrides({"STEPS_PER_EPOCH": args.budget})
    with tempfile.TemporaryDirectory(prefix="active_learning_") as logs:
        torch.manual_seed(seed)
        first = MaskRCNN("training", config, model_dir=Path(logs))
        tick = time.perf_counter()
        train_round(first, _subset(pool_scenes, initial), seed * 100)
        start = _scored(evaluate(first, val, args.resamples), pool, initial)
        say(f"seed {seed} round 0: mAP@0.5 {start.map50:.3f} ({time.perf_counter() - tick:.0f} s)")
        state = copy.deepcopy(first.net.state_dict())
        arms = {}
        for name in ("rank", "random"):
            model = MaskRCNN("training", config, model_dir=Path(logs) / name)
            model.net.load_state_dict(state)
            arms[name] = Arm(name, model, list(initial), [start])
        for round_ in range(1, args.rounds + 1):
            for arm in arms.values():
                tick = time.perf_counter()
                _one_round(arm, pool, pool_scenes, rng, args, seed * 100 + round_)
                arm.figures.append(
                    _scored(evaluate(arm.model, val, args.resamples), pool, arm.labelled)
                )
                f = arm.figures[-1]
                say(
                    f"seed {seed} round {round_} {arm.name}: mAP@0.5 {f.map50:.3f} "
                    f"[{f.low:.3f}, {f.high:.3f}], hard {f.hard_map50:.3f}, "
                    f"{f.hard_labelled} hard labelled ({time.perf_counter() - tick:.0f} s)"
                )
    return arms


def _one_round(arm: Arm, pool, pool_scenes, rng, args, seed: int) -> None:
    left = [i for i in range(args.pool) if i not in set(arm.labelled)]
    count = min(args.per_round, len(left))
    if arm.name == "rank":
        chosen = pick_by_rank(arm.model, pool, left, arm.labelled, count)
    else:
        chosen = [int(i) for i in rng.choice(left, count, replace=False)]
    arm.labelled = sorted(arm.labelled + chosen)
    train_round(arm.model, _subset(pool_scenes, arm.labelled), seed)


def _subset(pool_scenes: list[tuple], ids: list[int]) -> ShapesDataset:
    return dataset_of([pool_scenes[i] for i in ids])


def _scored(figures: Figures, pool: ShapesDataset, labelled: list[int]) -> Figures:
    figures.hard_labelled = sum(bool(pool.image_info[i]["hard"]) for i in labelled)
    return figures


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------
def report(results: dict[int, dict[str, Arm]], args: argparse.Namespace) -> list[str]:
    """The tables (markdown) and the verdict."""
    lines = [
        "| seed | round | labelled | rank mAP@0.5 [95% CI] | random mAP@0.5 [95% CI] | "
        "rank - random | hard: rank / random | hard labelled: rank / random |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for seed, arms in results.items():
        rank, rand = arms["rank"].figures, arms["random"].figures
        for r, (a, b) in enumerate(zip(rank, rand, strict=True)):
            lines.append(
                f"| {seed} | {r} | {args.initial + r * args.per_round} | {a.map50:.3f} "
                f"[{a.low:.3f}, {a.high:.3f}] | {b.map50:.3f} [{b.low:.3f}, {b.high:.3f}] | "
                f"{a.map50 - b.map50:+.3f} | {a.hard_map50:.3f} / {b.hard_map50:.3f} | "
                f"{a.hard_labelled} / {b.hard_labelled} |"
            )
    lines += ["", "| round | rank (mean of seeds) | random | rank - random [95% CI, paired] |"]
    lines += ["|---|---|---|---|"]
    boot = Bootstrap(args.resamples)
    last = None
    for r in range(args.rounds + 1):
        diffs = np.mean(
            [
                a["rank"].figures[r].image_aps - a["random"].figures[r].image_aps
                for a in results.values()
            ],
            axis=0,
        )
        interval = boot.interval(mean_samples(diffs, boot.counts(len(diffs))))
        rank = np.mean([a["rank"].figures[r].map50 for a in results.values()])
        rand = np.mean([a["random"].figures[r].map50 for a in results.values()])
        last = (rank - rand, interval)
        lines.append(
            f"| {r} | {rank:.3f} | {rand:.3f} | {rank - rand:+.3f} [{interval.low:+.3f}, "
            f"{interval.high:+.3f}] |"
        )
    gain, interval = last
    met = "MET" if gain >= TARGET else "NOT MET"
    lines += [
        "",
        f"Round {args.rounds}, averaged over {len(results)} seeds: rank - random = {gain:+.3f} "
        f"mask mAP@0.5 (paired 95% CI [{interval.low:+.3f}, {interval.high:+.3f}]); target "
        f">= {TARGET:+.2f}: {met}.",
    ]
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    demo_budget = DEMO_EPOCHS * int(ShapesDemoConfig.STEPS_PER_EPOCH)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default: 3)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds after round 0 (default: 3)")
    parser.add_argument(
        "--budget",
        type=int,
        default=demo_budget,
        help=f"training steps per round (default: the demo's, {demo_budget})",
    )
    parser.add_argument("--pool", type=int, default=200, help="scenes in the pool")
    parser.add_argument("--pool-hard", type=int, default=40, help="hard scenes in the pool")
    parser.add_argument("--initial", type=int, default=20, help="labelled scenes to start with")
    parser.add_argument("--per-round", type=int, default=20, help="scenes added per round")
    parser.add_argument("--val", type=int, default=60, help="validation scenes")
    parser.add_argument("--val-hard", type=int, default=30, help="hard validation scenes")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    args = parser.parse_args(argv)
    if args.initial + args.rounds * args.per_round > args.pool:
        parser.error("--pool is smaller than --initial + --rounds * --per-round")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    val = dataset_of(scenes(args.val, args.val_hard, VAL_SEED, 1))
    print(
        f"pool {args.pool} scenes ({args.pool_hard} hard), {args.initial} labelled to start, "
        f"{args.rounds} rounds of +{args.per_round}, {args.budget} steps a round, "
        f"validation {args.val} scenes ({args.val_hard} hard)",
        flush=True,
    )
    results = {
        seed: run_seed(seed, args, val, lambda s: print(s, flush=True))
        for seed in range(args.seeds)
    }
    print("\n".join(["", *report(results, args)]))
    print(f"wall time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
