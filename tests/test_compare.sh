#!/bin/sh
# test_compare.sh - `gptscope compare` on the CPU: both configurations see the
# same requests and the same number of steps, the report files parse back, a
# B that cannot be built leaves A running (exit 1, the reason on stderr), and
# two traces of different models compare under a warning. No timing is
# asserted: verdicts are tested on synthetic timings in test_compare_stats.
GS=${GPTSCOPE:-./gptscope}
EX=${GS_EXAMPLES:-../examples}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
n=0
fails=0

ok() { # ok COND-STATUS NAME
    n=$((n + 1))
    if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fails=$((fails + 1)); fi
}

A="$EX/compare-naive.yaml"
B="$EX/compare-fused.yaml"
"$GS" compare "$A" "$B" --steps 12 --report "$TMP/r.md" -o "$TMP/r.json" >"$TMP/out" 2>"$TMP/err"
ok $? "compare naive vs fused attention on the CPU exits 0"
grep -q '^steps    A 12, B 12 timed$' "$TMP/out"
ok $? "--steps 12: twelve timed steps each"
line=$(grep '^requests ' "$TMP/out")
echo "$line" | grep -Eq '^requests A 12 steps, ([0-9]+) requests, prompts ([0-9a-f]{16}); B 12 steps, \1 requests, prompts \2 \(the same\)$'
ok $? "both sides ran the same steps and the same requests (count and prompt fingerprint)"
grep -q '^decode tokens/s ' "$TMP/out" && grep -q '^ms/token (decode step) ' "$TMP/out" &&
grep -q '^KV bytes/token  *1024 B  *1024 B$' "$TMP/out"
ok $? "summary: decode tokens/s, ms/token, KV bytes per token for both"
grep -Eq '^attention +[0-9.]+ \[[0-9.]+, [0-9.]+\] +[0-9.]+ \[[0-9.]+, [0-9.]+\] +[-+][0-9.]+ +[0-9.]+x +(A faster|B faster|noise)' "$TMP/out"
ok $? "an attention row with A, B (median and interval), delta, ratio and a verdict"
awk '/^op \(us per/{on=1; next} on && NF==0{exit} on{print}' "$TMP/out" >"$TMP/ops"
# Rows come sorted by |delta|, largest first.
sed -E 's/^[a-z_]+ +[0-9.]+ \[[^]]*\] +[0-9.]+ \[[^]]*\] +[-+]([0-9.]+) .*/\1/' "$TMP/ops" >"$TMP/deltas"
sort -s -g -r "$TMP/deltas" | cmp -s - "$TMP/deltas" && [ "$(wc -l <"$TMP/deltas")" -gt 5 ]
ok $? "per-op rows sorted by absolute delta"

# Markdown: the three tables with their headers.
grep -q '^| figure | A | B | delta (B-A) | ratio | verdict |$' "$TMP/r.md" &&
grep -q '^| op | A | B | delta | ratio | verdict |$' "$TMP/r.md" && grep -q '^| attention | ' "$TMP/r.md"
ok $? "--report OUT.md: Markdown tables with their headers and an attention row"
# The CSV through its own header: 3 summary + 3 memory + 3 quality rows + one per op, 19 columns each.
"$GS" compare "$A" "$B" --steps 6 --report "$TMP/r.csv" >"$TMP/out2" 2>"$TMP/err"
ok $? "compare --report OUT.csv exits 0"
nops=$(awk '/^op \(us per/{on=1; next} on && NF==0{exit} on{c++} END{print c+0}' "$TMP/out2")
head -1 "$TMP/r.csv" | grep -q '^section,name,unit,higher_is_better,a_n,a_median,a_ci_lo,a_ci_hi,a_min,a_max,b_n,b_median,b_ci_lo,b_ci_hi,b_min,b_max,delta,ratio,verdict$'
ok $? "CSV header names the columns"
[ "$(wc -l <"$TMP/r.csv")" -eq $((1 + 3 + 3 + 3 + nops)) ] && [ "$nops" -gt 5 ]
ok $? "CSV rows: 3 summary, 3 memory, 3 quality, $nops ops"
[ "$(grep -c '^quality,' "$TMP/r.csv")" -eq 3 ] && awk -F, '$1 == "quality" && NF != 19 {bad = 1} END {exit bad}' "$TMP/r.csv"
ok $? "CSV quality rows (KL, top-1, perplexity against the fp32 baseline), 19 columns each"
grep -q '^## Quality against the fp32 baseline' "$TMP/r.md" && grep -q '^| KL (nats/token) | ' "$TMP/r.md"
ok $? "--report OUT.md: the quality table"
awk -F, '{ f = NF; for (i = 1; i <= NF; i++) if ($i ~ /^"/ && $i !~ /"$/) f--; if (f != 19) bad = 1 } END { exit bad }' "$TMP/r.csv"
ok $? "every CSV row has 19 fields"
# 6 steps: the four prompts prefill in one step, then 5 decode steps give the per-op samples.
grep -q '^summary,"decode tokens/s",tokens/s,1,5,' "$TMP/r.csv" && grep -q '^op,"attention",us,0,5,.*,5,' "$TMP/r.csv"
ok $? "6 steps: 5 decode-step samples for decode tokens/s and for attention on both sides"
if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); ev=d["traceEvents"] if isinstance(d,dict) else d; assert len({e["pid"] for e in ev if "pid" in e})==2' "$TMP/r.json"
    ok $? "-o OUT.json: one Chrome trace, two processes"
else
    grep -q '"pid":2' "$TMP/r.json"
    ok $? "-o OUT.json: a second process (python3 absent: not parsed)"
fi

# A bad B: A runs alone and is reported; stderr names B and why; exit 1.
# Weight precision: fp16 against int4 on the CPU, as on the H100.
"$GS" compare "$EX/compare-fp16.yaml" "$EX/compare-int4.yaml" --steps 20 --report "$TMP/q.md" >"$TMP/out" 2>"$TMP/err"
ok $? "compare fp16 against int4 (CPU) exits 0"
grep -q "int4-g32 weights" "$TMP/out" && awk '/^weights / {exit !($2 > 1.5 * $4)}' "$TMP/out" &&
    awk '/^KL \(nats\/token\)/ {exit !($4 > 0 && $4 > 100 * $3)}' "$TMP/out" && grep -q '^## Quality against the fp32 baseline' "$TMP/q.md"
ok $? "fp16 against int4: int4 named, fewer weight bytes, int4's KL far above fp16's, quality in the report"
printf 'model: %s/no-such-model.bin\nbackend: cpu\n' "$TMP" >"$TMP/bad.yaml"
"$GS" compare "$A" "$TMP/bad.yaml" --steps 5 >"$TMP/out" 2>"$TMP/err"
st=$?
[ $st -eq 1 ] && grep -q "B (.*bad.yaml) cannot be built, running A alone: .*no such file" "$TMP/err" &&
grep -q '^steps    A 5, B 0 timed$' "$TMP/out" && grep -q '^requests A 5 steps, .*B not run$' "$TMP/out" &&
grep -Eq '^attention +[0-9.]+ \[[0-9.]+, [0-9.]+\] +- +- +- +-' "$TMP/out"
ok $? "a B that cannot be built: A alone, its rows with '-' for B, the reason on stderr, exit 1 (got $st)"
"$GS" compare "$A" >/dev/null 2>"$TMP/err"
[ $? -eq 2 ] && grep -q "two files are needed" "$TMP/err"
ok $? "one file: usage error, exit 2"
"$GS" compare "$A" "$B" --report "$TMP/r.txt" >/dev/null 2>"$TMP/err"
[ $? -eq 2 ] && grep -q "must end in .md or .csv" "$TMP/err"
ok $? "--report with an unknown extension: exit 2"

# Two recordings: the same way, with a warning when their models differ.
"$GS" record --model gpt2-tiny --backend cpu --steps 8 -o "$TMP/g.gst" >/dev/null 2>&1 &&
"$GS" record --model llama-tiny --backend cpu --steps 8 -o "$TMP/l.gst" >/dev/null 2>&1
ok $? "record two traces (gpt2-tiny, llama-tiny)"
"$GS" compare "$TMP/g.gst" "$TMP/l.gst" --report "$TMP/t.md" >"$TMP/out" 2>"$TMP/err"
st=$?
[ $st -eq 0 ] && head -1 "$TMP/out" | grep -q '^warning: the traces ran different models (A gpt2-tiny, B llama-tiny)' &&
grep -q '^steps    A 8, B 8 timed$' "$TMP/out" && grep -q '^weights  *unavailable  *unavailable$' "$TMP/out"
ok $? "two traces of different models: a warning on the first line, 8 steps each, memory unavailable"
"$GS" compare "$TMP/g.gst" "$TMP/g.gst" >"$TMP/out" 2>"$TMP/err" && ! grep -q '^warning' "$TMP/out" &&
! grep -Eq ' (A|B) faster ' "$TMP/out"
ok $? "a trace against itself: no warning, every verdict noise"
"$GS" compare "$TMP/g.gst" "$A" >/dev/null 2>"$TMP/err"
[ $? -eq 2 ]
ok $? "one trace and one configuration: exit 2"

echo "1..$n"
[ $fails -eq 0 ]
