#!/usr/bin/env bash
# gpu-check.sh [OUT]: the checks and measurements that need a GPU, in one command (about 5-8 minutes on an H100).
#
#   1. the GPU tests (pytest -m gpu): CUDA-graph replay against the eager step, a whole fast run, packed seeds
#      on CUDA streams against the same seeds alone, augmentation on the device;
#   2. normbench bench: eager loop against the fast engine for pre-act ResNet-164 and ProcResNet-166 (the
#      issue's models, batch 128), fp32 (TF32) and bf16, and pre-act ResNet-20 with 2 and 4 seeds packed;
#   3. normbench estimate: GPU-hours of config/paper.yaml from those measured throughputs.
#
# Everything it prints is also written under OUT (default: gpu-check/): pytest-gpu.txt, bench.md, bench.json,
# bench-small.md, bench-small.json, estimate.md. Copy the bench tables into README.md (section Speed) with the
# device they name. The script stops at the first failure; it never changes the GPU's settings.
set -euo pipefail
out=${1:-${OUT:-gpu-check}}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
python -c "import normbench" 2>/dev/null || export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

python -m pytest -m gpu -q -p no:cacheprovider 2>&1 | tee "$out/pytest-gpu.txt"
python -m normbench.cli bench --models preact_resnet164 procresnet166:procrustes --precision fp32 bf16 \
  --steps 50 --warmup 10 --repeats 2 --json "$out/bench.json" | tee "$out/bench.md"
python -m normbench.cli bench --models preact_resnet20 --pack 2 4 --steps 100 --warmup 10 --repeats 2 \
  --json "$out/bench-small.json" | tee "$out/bench-small.md"
python -m normbench.cli estimate --config config/paper.yaml --bench "$out/bench.json" | tee "$out/estimate.md"
