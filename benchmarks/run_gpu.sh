#!/usr/bin/env bash
# The GPU checks in one go, for a machine with a CUDA GPU, in this order: the CUDA tests;
# issue 13's two GPU targets (inference against torchvision at batch 8 in fp16, and the video
# splash of a 1280 x 720 clip in fp16), first so that a run cut short still has them; the AMP
# bugs planted in the CUDA tests; Matterport .h5 models on the GPU against Keras's detections
# (tests/modeling/test_matterport_equivalence.py with its slow cases; it needs the balloon photos in
# ../shared/data/balloon/val and skips without them); inference in float32 with the float64
# agreement; and the training-step benchmarks. Each part's output is also written under the
# folder given as the first argument (default gpu_results), one file per part. The Python that
# runs it needs torch, torchvision and this project's dependencies; the project is taken from
# this checkout.
#
#     bash benchmarks/run_gpu.sh [OUTPUT_FOLDER]
set -uo pipefail
out=${1:-gpu_results}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python=${PYTHON:-python3}

nvidia-smi -L | tee "$out/device.txt"
$python -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)" | tee -a "$out/device.txt"
$python -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/structures/test_transfer.py tests/modeling/test_roi_align.py 2>&1 | tee "$out/tests.txt"
$python -m benchmarks.infer_gpu --repeats 10 --batch 8 --precision fp16 --skip-float64 --breakdown 2>&1 | tee "$out/infer_gpu_fp16.txt"
$python -m benchmarks.splash_video --device cuda --precision fp16 --width 1280 --height 720 --seconds 30 --fps 30 --set IMAGES_PER_GPU=4 2>&1 | tee "$out/splash_video_720p.txt"
$python -m tools.test_quality.planted_bugs --only test_cuda 2>&1 | tee "$out/planted_bugs_cuda.txt"
MRCNN_SLOW_EQUIVALENCE=1 $python -m pytest -q -p no:cacheprovider -rfEs tests/modeling/test_matterport_equivalence.py 2>&1 | tee "$out/matterport_equivalence.txt"
$python -m benchmarks.infer_gpu --repeats 10 --batch 8 2>&1 | tee "$out/infer_gpu.txt"
$python -m benchmarks.train_step --device cuda --steps 20 2>&1 | tee "$out/train_step.txt"
$python -m benchmarks.train_step --device cuda --size 768 --batch 4 --steps 10 2>&1 | tee -a "$out/train_step.txt"
