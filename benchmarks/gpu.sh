#!/usr/bin/env bash
# Run the U-Net benchmark on one GPU: float32, mixed_float16 and mixed_bfloat16 training of the
# zoo and the hand-written model with XLA (jit_compile) off and on, and SavedModel latency in
# float32 and mixed_float16. A GPU step takes milliseconds, so it times more steps than the CPU
# defaults. The peak reference is 20 products of two 8192 x 8192 matrices after every cycle of
# training steps. TensorFlow runs float32 matrix products and convolutions as TF32 on GPUs
# that have it, so the float32 figures are TF32 figures there.
# Extra options are passed on, for example: benchmarks/gpu.sh --rounds 5
# NOTE: written for a CUDA build of TensorFlow 2.21; it has not been run on a GPU yet.
set -euo pipefail
cd "$(dirname "$0")/.."

python -m benchmarks.unet_speed \
    --device gpu --xla both \
    --precisions float32 mixed_float16 mixed_bfloat16 \
    --mixed-contenders zoo handwritten \
    --sizes 256 128 --mixed-sizes 256 128 \
    --batch-size 8 --steps 50 --mixed-steps 50 --warmup-steps 10 --rounds 3 \
    --serve-precisions float32 mixed_float16 --latency-repeats 50 \
    --matmul-size 8192 --matmul-calls 20 --matmul-repeats 1 \
    --output "runs/benchmarks/unet_speed-gpu-$(date +%Y%m%d-%H%M%S).json" \
    "$@"
