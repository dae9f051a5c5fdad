#!/bin/sh
# cpu_vs_llama2c.sh - gptscope's CPU backend beside llama2.c's run.c, one run.
#
# usage: tests/bench/cpu_vs_llama2c.sh GPTSCOPE RUN_C MODEL [STEPS] [REPEATS]
#   RUN_C   path to llama2.c's unmodified run.c (github.com/karpathy/llama2.c)
#   MODEL   a llama2.c checkpoint, e.g. stories260K.bin
# run.c is built with `gcc -O3` (its own `make run`, single-threaded). It needs a
# tokenizer file; ours is a stand-in with the checkpoint's vocabulary size
# (token pieces "<i>", all scores 0): it changes only the printed text, not the
# forward pass or run.c's "achieved tok/s" figure, which is what we read.
set -eu
GS=$1 RUNC=$2 MODEL=$3 STEPS=${4:-256} REPEATS=${5:-10}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
gcc -O3 -o "$TMP/run" "$RUNC" -lm
python3 - "$MODEL" "$TMP/tok.bin" <<'PY'
import struct, sys
vocab = abs(struct.unpack("<7i", open(sys.argv[1], "rb").read(28))[5])
with open(sys.argv[2], "wb") as f:
    f.write(struct.pack("<i", 16))
    for i in range(vocab):
        piece = f"<{i}>".encode()
        f.write(struct.pack("<fi", 0.0, len(piece)) + piece)
PY
best_ref=0
for i in $(seq "$REPEATS"); do
    t=$("$TMP/run" "$MODEL" -z "$TMP/tok.bin" -t 0 -n "$STEPS" 2>&1 >/dev/null | sed -n 's/achieved tok\/s: //p')
    best_ref=$(python3 -c "print(max($best_ref, $t))")
done
gs1=0 gsn=0
for i in $(seq "$REPEATS"); do
    a=$("$GS" bench --model "$MODEL" --prompt-len 1 --gen-len "$STEPS" --threads 1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["decode_tokens_per_s"])')
    b=$("$GS" bench --model "$MODEL" --prompt-len 1 --gen-len "$STEPS" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["decode_tokens_per_s"])')
    gs1=$(python3 -c "print(max($gs1, $a))"); gsn=$(python3 -c "print(max($gsn, $b))")
done
echo "machine: $(nproc) cores, $(sed -n 's/^model name\t*: //p' /proc/cpuinfo | head -1)"
echo "model: $MODEL, $STEPS tokens greedy, best of $REPEATS runs"
printf '%-40s %10.0f tok/s\n' "llama2.c run.c (gcc -O3, 1 thread)" "$best_ref"
printf '%-40s %10.0f tok/s  (%.2fx)\n' "gptscope cpu, 1 thread" "$gs1" "$(python3 -c "print($gs1/$best_ref)")"
printf '%-40s %10.0f tok/s  (%.2fx)\n' "gptscope cpu, all cores" "$gsn" "$(python3 -c "print($gsn/$best_ref)")"
