#!/bin/sh
# run-gpu-tests.sh - GPU tests (make check-gpu), run on a machine with an
# NVIDIA GPU, never by CI. Today: the CUDA device probe must find the GPU and
# CUPTI must be able to trace; the CUDA backend's kernel tests join here.
BUILD=${1:-.}
GS="$BUILD/gptscope"
n=0 fails=0
check() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fails=$((fails + 1)); fi; }
"$GS" info >"$BUILD/gpu-info.txt" 2>&1
check $? "gptscope info runs"
grep -q "device 0:" "$BUILD/gpu-info.txt"
check $? "the CUDA probe lists a device"
grep -q "CUPTI        usable" "$BUILD/gpu-info.txt"
check $? "CUPTI can enable kernel tracing"
cat "$BUILD/gpu-info.txt"
echo "1..$n"
echo "$((n - fails)) passed, $fails failed"
[ $fails -eq 0 ]
