#!/bin/sh
# stage.sh - build with CUDA on a development machine (no GPU needed) and
# gather what the GPU test machine needs into gpu-run/: the program, the GPU
# test programs and the shared stories260K model. libyaml is linked statically
# because the GPU machine has none. Then, on the GPU machine, in the repository:
#   LD_LIBRARY_PATH=/usr/local/cuda/lib64 GS_MODELS_DIR=gpu-run GS_TEST_DATA=tests/data \
#       sh tests/gpu/run-gpu-tests.sh gpu-run
set -eu
cd "$(dirname "$0")/../.."
BUILD=gpu-bin CONFIGURE_FLAGS="--with-cuda --enable-static-yaml" sh .ci/setup
make -C gpu-bin -j"$(nproc)" check TESTS= >/dev/null
rm -rf gpu-run
mkdir -p gpu-run/tests/gpu
cp gpu-bin/gptscope gpu-run/
for t in gpu-bin/tests/gpu/test_cuda_*; do
    case "$t" in *.o) ;; *) cp "$t" gpu-run/tests/gpu/ ;; esac
done
cp "${GS_MODELS_DIR:-../shared/models}/stories260K.bin" gpu-run/
du -sh gpu-run
