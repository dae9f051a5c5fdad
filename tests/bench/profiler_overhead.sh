#!/bin/sh
# profiler_overhead.sh - what profiling costs: decode tokens/s with the
# profiler off, with the CUPTI timeline on, and with hardware metrics on a
# sampled step every 100, each run REPEAT times, interleaved so drift hits all
# alike. A benchmark, not a test.
#   sh tests/bench/profiler_overhead.sh [GPTSCOPE] [CONFIG] [GEN_LEN] [REPEAT]
GS=${1:-build/gptscope}
CFG=${2:-examples/gpt2-fp16-fused.yaml}
GEN=${3:-500}
REPEAT=${4:-3}
run() { # label options...
    label=$1; shift
    "$GS" bench -c "$CFG" --batch 1 --prompt-len 16 --gen-len "$GEN" --json "$@" 2>/dev/null |
        python3 -c '
import json, sys
d = json.load(sys.stdin)
# Overall: sampled (replayed) steps count against the run, as a user sees it.
tok = d["decode_tokens"] + d["metrics_step_tokens"]
sec = d["decode_s"] + d["metrics_step_s"]
print("%-24s %9.1f tok/s  %.4f ms/step  (overall %.1f tok/s, %d sampled steps)" % (sys.argv[1],
      d["decode_tokens_per_s"], d["ms_per_decode_step"], tok / sec if sec else 0, d["metrics_steps"]))' "$label"
}
echo "config $CFG, batch 1, $GEN decode tokens, $REPEAT rounds"
i=0
while [ $i -lt "$REPEAT" ]; do
    run "profiler off"
    run "timeline on" --profile --nvtx off
    GS_CUPTI_NO_CORRELATION=1 run "timeline, no op links" --profile --nvtx off
    run "timeline every 10th step" --profile --nvtx off --trace-every 10
    run "timeline every 100th step" --profile --nvtx off --trace-every 100
    run "timeline+nvtx on" --profile
    run "metrics every 100" --profile --metrics-every 100
    i=$((i + 1))
done
