#!/bin/sh
# test_cli.sh - the command line as a user meets it: exit status 0 on success,
# 1 on runtime failure, 2 on bad usage or bad input with one clear line on
# stderr naming what and where. TAP output.
GS=${GPTSCOPE:-./gptscope}
MODELS=${GS_MODELS_DIR:-../shared/models}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
n=0
fails=0

ok() { # ok COND-STATUS NAME
    n=$((n + 1))
    if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fails=$((fails + 1)); fi
}

# expect STATUS PATTERN NAME -- CMD...   (PATTERN searched in stderr; '' for none)
expect() {
    want=$1 pat=$2 name=$3
    shift 4
    "$@" >"$TMP/out" 2>"$TMP/err"
    got=$?
    good=1
    [ "$got" -eq "$want" ] || good=0
    if [ -n "$pat" ] && ! grep -q -- "$pat" "$TMP/err"; then good=0; fi
    if [ "$want" -eq 2 ] && [ "$(wc -l <"$TMP/err")" -ne 1 ]; then good=0; fi
    if [ $good -eq 1 ]; then ok 0 "$name"; else
        ok 1 "$name"
        echo "# status $got (wanted $want); stderr:"; sed 's/^/#   /' "$TMP/err"
    fi
}

expect 0 '' "--version" -- "$GS" --version
expect 0 '' "--help" -- "$GS" --help
for c in live generate bench record replay export compare info; do
    expect 0 '' "$c --help" -- "$GS" "$c" --help
done
expect 2 "unknown command 'frobnicate'" "unknown command" -- "$GS" frobnicate
expect 2 "unknown option '--bogus'" "unknown option" -- "$GS" generate --bogus
expect 2 "needs a value" "option without its value" -- "$GS" generate --model
expect 2 "--metrics-set takes full or fast" "a bad metric set" -- "$GS" bench --model gpt2-tiny --metrics-set most
expect 2 "--device-trace takes on or off" "a bad device-trace switch" -- "$GS" record -o x.gst --device-trace maybe
expect 2 "gpt2-124m" "unknown model lists the presets" -- "$GS" generate --model no-such-model -n 1
expect 2 "seed" "negative seed" -- "$GS" generate --seed -1
expect 2 "threads" "non-numeric threads" -- "$GS" generate --threads many
expect 2 "temperature" "temperature nan" -- "$GS" generate --temperature nan
expect 2 "backend" "unknown backend" -- "$GS" generate --backend tpu
expect 2 "optimizations.kv: fp8 runs on the cuda backend only" "KV fp8 on the cpu backend" -- "$GS" generate --model gpt2-tiny --backend cpu --kv fp8 -n 2
expect 2 "optimizations.cuda_graphs: the cpu backend has no CUDA graphs" "CUDA graphs on the CPU backend are refused" -- "$GS" generate --model gpt2-tiny --backend cpu --cuda-graphs on -n 2
expect 2 "gptscope generate: --kv: expected one of fp32.fp16.int8.fp8" "unknown KV precision" -- "$GS" generate --model gpt2-tiny --backend cpu --kv fp4 -n 2
expect 0 '' "KV int8 on the cpu backend" -- "$GS" generate --model gpt2-tiny --backend cpu --kv int8 -n 4
expect 2 "format" "unknown format" -- "$GS" generate --format onnx
expect 2 "prompt-ids" "malformed prompt ids" -- "$GS" generate --model gpt2-tiny --prompt-ids 1,x,3
expect 2 "outside the vocabulary" "prompt id beyond the vocabulary" -- "$GS" generate --model gpt2-tiny --prompt-ids 1,99999 -n 2
expect 2 "exceeds the context" "request longer than the context" -- "$GS" generate --model gpt2-tiny -n 500
expect 2 "unexpected argument" "stray argument" -- "$GS" generate extra

# Model files.
printf 'not a model at all, just some bytes that are long enough to look' >"$TMP/junk.bin"
expect 2 "junk.bin" "unknown file format names the file" -- "$GS" generate --model "$TMP/junk.bin" -n 1
if [ -f "$MODELS/stories260K.bin" ]; then
    head -c 100000 "$MODELS/stories260K.bin" >"$TMP/trunc.bin"
    expect 2 "trunc.bin" "truncated checkpoint" -- "$GS" generate --model "$TMP/trunc.bin" -n 1
    expect 2 "trunc.bin" "truncated checkpoint with --format llama2c" -- "$GS" generate --format llama2c --model "$TMP/trunc.bin" -n 1
    "$GS" generate --model "$MODELS/stories260K.bin" -n 8 >"$TMP/ids" 2>"$TMP/err"
    st=$?
    [ $st -eq 0 ] && [ "$(cat "$TMP/ids")" = "461 461 401 401 401 461 378 455" ]
    ok $? "generate stories260K greedy prints run.c's first 8 ids"
    # --logits-out reads every step's logits back; without it only the greedy
    # ids come back. Same ids, and each written row's argmax is its id.
    "$GS" generate --model "$MODELS/stories260K.bin" -n 8 --logits-out "$TMP/st.f32" >"$TMP/ids2" 2>"$TMP/err" &&
    cmp -s "$TMP/ids" "$TMP/ids2" &&
    [ "$(od -An -v -f -w2048 "$TMP/st.f32" |
        awk '{b = 1; for (i = 2; i <= NF; i++) if ($i + 0 > $b + 0) b = i; printf("%s%d", (NR > 1 ? " " : ""), b - 1)}')" = "$(cat "$TMP/ids")" ]
    ok $? "generate --logits-out: the same ids, each the argmax of its written row (512 logits)"
else
    n=$((n + 2)); echo "ok $((n - 1)) # SKIP stories260K.bin not found in $MODELS"; echo "ok $n # SKIP stories260K.bin not found in $MODELS"
fi

# YAML configuration.
printf 'model: gpt2-tiny\nworkload:\n  batch: [1, 2]\n' >"$TMP/bad1.yaml"
expect 2 "bad1.yaml:3:" "YAML type error names file:line:column" -- "$GS" generate -c "$TMP/bad1.yaml" -n 1
printf 'model: gpt2-tiny\nwrkload:\n  batch: 2\n' >"$TMP/bad2.yaml"
expect 2 "bad2.yaml:2:1" "unknown YAML key names file:line:column" -- "$GS" generate -c "$TMP/bad2.yaml" -n 1
printf 'model: "gpt2-tiny\n' >"$TMP/bad3.yaml"
expect 2 "bad3.yaml:" "YAML syntax error" -- "$GS" generate -c "$TMP/bad3.yaml" -n 1
printf 'model:\n  preset: gpt2-tiny\n  n_head: 5\n' >"$TMP/bad4.yaml"
expect 2 "n_head 5 does not divide" "impossible shape" -- "$GS" generate -c "$TMP/bad4.yaml" -n 1
expect 2 "nope.yaml" "missing YAML file" -- "$GS" generate -c "$TMP/nope.yaml" -n 1
printf 'model:\n  preset: llama-tiny\n  n_layer: 1\nseed: 5\n' >"$TMP/good.yaml"
"$GS" generate -c "$TMP/good.yaml" -n 6 >"$TMP/a" 2>"$TMP/err"
ok $? "custom shape from YAML runs"
[ "$(wc -w <"$TMP/a")" -eq 6 ]
ok $? "generate -n 6 prints 6 ids"
"$GS" generate -c "$TMP/good.yaml" --seed 6 -n 6 >"$TMP/b" 2>&1
! cmp -s "$TMP/a" "$TMP/b"
ok $? "the command line overrides the YAML seed (other weights, other ids)"
"$GS" generate -c "$TMP/good.yaml" -n 6 >"$TMP/c" 2>&1
cmp -s "$TMP/a" "$TMP/c"
ok $? "same seed, same ids"
"$GS" generate --model gpt2-tiny -n 6 --temperature 0.9 --seed 3 >"$TMP/t1" 2>&1 &&
"$GS" generate --model gpt2-tiny -n 6 --temperature 0.9 --seed 3 >"$TMP/t2" 2>&1 && cmp -s "$TMP/t1" "$TMP/t2"
ok $? "seeded sampling at temperature 0.9 is reproducible"

"$GS" generate --model gpt2-tiny -n 3 --logits-out "$TMP/logits.f32" >/dev/null 2>&1 &&
[ "$(wc -c <"$TMP/logits.f32")" -eq $((3 * 256 * 4)) ]
ok $? "generate --logits-out writes one vocabulary row of float32 per generated token"
expect 2 "no-such-dir" "--logits-out into a missing folder" -- "$GS" generate --model gpt2-tiny -n 1 --logits-out "$TMP/no-such-dir/x"
printf 'model: gpt2-tiny\nworkload:\n  batch: 2\n  requests: 5\n  arrival_rate: 0.5\n  gen_len: 4\n' >"$TMP/arrive.yaml"
expect 0 '' "bench with requests arriving over time" -- "$GS" bench -c "$TMP/arrive.yaml" --json
grep -q '"requests":5' "$TMP/out"
ok $? "bench ran all 5 requests"

# The other commands.
expect 0 '' "info" -- "$GS" info
grep -q "gpt2-124m" "$TMP/out"
ok $? "info lists the presets"
expect 0 '' "bench --json on a tiny model" -- "$GS" bench --model gpt2-tiny --batch 2 --prompt-len 8 --gen-len 4 --json
grep -q '"decode_tokens_per_s"' "$TMP/out"
ok $? "bench --json reports decode tokens/s"
# bench --profile: the per-op table and the roofline, every byte modeled on the CPU.
# (Which bound an op gets depends on the peaks measured on this machine: a
# sanitizer build measures far lower ones, so either bound is accepted.)
expect 0 '' "bench --profile on a tiny model" -- env XDG_CACHE_HOME="$TMP/cache" "$GS" bench --model llama-tiny --batch 2 --prompt-len 8 --gen-len 4 --profile
grep -q '^op  *calls  *total ms  *mean us  *share  *FLOP/call  *B/call  *B/call' "$TMP/out" &&
grep -q '^roofline' "$TMP/out" && grep -q 'all modeled' "$TMP/out" &&
grep -Eq '^matmul_qkv +8 +[0-9.]+ +[0-9.]+ +[0-9.]+% +[0-9.]+k +[0-9.]+k +- *$' "$TMP/out" &&
grep -Eq '^swiglu +[0-9.]+ .*(memory|compute) \(model\)$' "$TMP/out"
ok $? "bench --profile prints the op table header, a matmul_qkv row and a roofline row"
ls "$TMP/cache/gptscope/"peaks-cpu-*.txt >/dev/null 2>&1
ok $? "bench --profile caches the measured peaks under XDG_CACHE_HOME"
expect 0 '' "bench --profile --json" -- env XDG_CACHE_HOME="$TMP/cache" "$GS" bench --model gpt2-tiny --batch 2 --prompt-len 8 --gen-len 4 --profile --json
if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import json,sys; d=json.load(sys.stdin); p=d["profile"]; assert p["peaks"]["source"]=="measured, cached"; assert any(o["name"]=="matmul_qkv" and o["roofline_bytes_source"]=="model" and o["flops_per_call_model"]>0 for o in p["ops"])' <"$TMP/out"
    ok $? "bench --profile --json parses, reads the cached peaks, has modeled op rows"
else
    grep -q '"profile":{.*"name":"matmul_qkv"' "$TMP/out"
    ok $? "bench --profile --json has op rows (python3 absent: not parsed)"
fi
# bench's output quality: the variant against the fp32 baseline, after the timed run.
if [ -f "$MODELS/stories260K.bin" ]; then
    expect 0 '' "bench --json on stories260K" -- "$GS" bench --model "$MODELS/stories260K.bin" --gen-len 4 --json
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import json,sys; d=json.load(sys.stdin)
assert d["weight_bytes"] > 0 and d["kv_bytes_per_token"] > 0
assert d["kl"] == 0 and d["top1"] == 1 and d["quality_tokens"] == 256 and d["quality_illustrative"] is False
assert 1 < d["perplexity"] < 512 and d["perplexity"] == d["base_perplexity"]' <"$TMP/out"
    else
        grep -q '"kv_bytes_per_token":[1-9].*"kl":0,"top1":1,"perplexity":[0-9.]*,"base_perplexity":[0-9.]*,"quality_tokens":256,"quality_illustrative":false' "$TMP/out"
    fi
    ok $? "bench --json on stories260K: fp32 run, KL 0, top-1 1, perplexity in (1, vocab), weight and KV bytes"
    printf 'optimizations:\n  window: 32\n  sinks: 4\n' >"$TMP/window.yaml"
    expect 0 '' "bench --json with a sliding window" -- "$GS" bench -c "$TMP/window.yaml" --model "$MODELS/stories260K.bin" --gen-len 4 --quality-tokens 100 --json
    grep -q '"quality_tokens":100' "$TMP/out" && ! grep -q '"kl":0,' "$TMP/out" && grep -q '"kl":[0-9.e-]*,"top1":0\.' "$TMP/out"
    ok $? "a sliding window moves the distributions: KL > 0, top-1 < 1 on 100 positions"
    printf '1 2 3 4 5\n# ids\n6 7 8 9 10\n' >"$TMP/tokens.txt"
    expect 0 '' "bench --token-file FILE" -- "$GS" bench --model "$MODELS/stories260K.bin" --gen-len 4 --token-file "$TMP/tokens.txt"
    grep -q '^quality  vs fp32 baseline, 9 tokens of .*tokens.txt: KL 0 nats, top-1 100.0%' "$TMP/out"
    ok $? "bench --token-file FILE scores the file's 9 positions and prints one quality line"
    printf '1 2\n3 513\n' >"$TMP/badtokens.txt"
    expect 2 "badtokens.txt:2: token id 513 is outside the vocabulary" "bench --token-file with an id beyond the vocabulary" -- "$GS" bench --model "$MODELS/stories260K.bin" --token-file "$TMP/badtokens.txt"
    expect 2 "exceeds the model's context of 512" "bench --quality-tokens beyond the context" -- "$GS" bench --model "$MODELS/stories260K.bin" --quality-tokens 600
fi
expect 0 '' "bench --no-quality --json" -- "$GS" bench --model gpt2-tiny --batch 2 --prompt-len 8 --gen-len 4 --no-quality --json
grep -q '"kl":null,"top1":null,"perplexity":null,"base_perplexity":null,"quality_tokens":0,"quality_illustrative":null' "$TMP/out"
ok $? "bench --no-quality reports the quality figures as null"
expect 0 '' "bench on a preset" -- "$GS" bench --model gpt2-tiny --batch 2 --prompt-len 8 --gen-len 4
grep -q '^quality  vs fp32 baseline, 128 tokens sampled by the baseline: .*illustrative only: synthetic weights' "$TMP/out"
ok $? "bench on a preset marks its quality figures illustrative"
expect 2 "quality-tokens" "bench --quality-tokens 0" -- "$GS" bench --model gpt2-tiny --quality-tokens 0
# --repeat N: the workload timed N times, each phase's figures from one run (its fastest), not summed.
expect 0 '' "bench --repeat 3 --json" -- "$GS" bench --model gpt2-tiny --batch 2 --prompt-len 8 --gen-len 4 --repeat 3 --no-quality --json
grep -q '"prefill_tokens":16,' "$TMP/out" && grep -q '"decode_tokens":6,' "$TMP/out" && grep -q '"timed_runs":3' "$TMP/out"
ok $? "bench --repeat 3: one run's 16 prompt and 6 decode tokens, timed_runs 3"
expect 0 '' "bench --repeat 2" -- "$GS" bench --model gpt2-tiny --batch 2 --prompt-len 8 --gen-len 4 --repeat 2 --no-quality
grep -q '^timing   2 timed runs of the workload; prefill and decode each from its fastest run' "$TMP/out"
ok $? "bench --repeat 2 says how its figures were taken"
expect 2 "gptscope bench: --repeat: expected an integer 1..1000, got '0'" "bench --repeat 0" -- "$GS" bench --model gpt2-tiny --repeat 0
expect 2 "unknown option '--repeat'" "--repeat is bench's alone" -- "$GS" generate --model gpt2-tiny --repeat 2
# Model transforms: the options and the YAML keys spell them the same.
expect 0 '' "generate with --sparsity heads:0.25 --kv-heads 1 (GPT-2 MHA -> MQA, a head pruned)" -- "$GS" generate --model gpt2-tiny -n 4 --sparsity heads:0.25 --kv-heads 1
expect 0 '' "generate with --sparsity neurons:0.5 --kv-heads 2 (Llama GQA 4 -> 2)" -- "$GS" generate --model llama-tiny -n 4 --sparsity neurons:0.5 --kv-heads 2
expect 0 '' "bench with --sparsity 2:4" -- "$GS" bench --model gpt2-tiny --batch 2 --prompt-len 4 --gen-len 2 --sparsity 2:4
expect 0 '' "bench with --sparsity unstructured:0.5" -- "$GS" bench --model llama-tiny --batch 2 --prompt-len 4 --gen-len 2 --sparsity unstructured:0.5
printf 'model: gpt2-tiny\noptimizations:\n  sparsity: heads:0.25\n  kv_heads: 2\n' >"$TMP/prune.yaml"
expect 0 '' "the same from YAML" -- "$GS" generate -c "$TMP/prune.yaml" -n 2
expect 2 "gptscope generate: --sparsity: expected none, unstructured:R, 2:4, heads:R or neurons:R" "--sparsity heads (no ratio)" -- "$GS" generate --model gpt2-tiny --sparsity heads
expect 2 "--sparsity: .*got \"heads:1\"" "--sparsity heads:1" -- "$GS" generate --model gpt2-tiny --sparsity heads:1
expect 2 "--kv-heads: expected an integer" "--kv-heads -1" -- "$GS" generate --model gpt2-tiny --kv-heads -1
expect 2 "optimizations.kv_heads: 3 does not divide the model's 4 key/value heads" "--kv-heads 3 of 4" -- "$GS" generate --model gpt2-tiny -n 1 --kv-heads 3
expect 2 "optimizations.sparsity: heads:0.9 would leave no heads" "--sparsity heads:0.9 of 4 heads" -- "$GS" generate --model gpt2-tiny -n 1 --sparsity heads:0.9
expect 2 "optimizations.sparsity: heads:0.1 removes no head" "--sparsity heads:0.1 of 4 heads" -- "$GS" bench --model gpt2-tiny --sparsity heads:0.1
printf 'optimizations:\n  sparsity_kind: heads\n' >"$TMP/old.yaml"
expect 2 "old.yaml:2:3: optimizations.sparsity_kind is gone" "the old sparsity_kind key says where it went" -- "$GS" generate -c "$TMP/old.yaml"
printf 'optimizations:\n  window: 128\n' >"$TMP/win.yaml"
expect 2 "optimizations.window: 128 is not smaller than the model's 128-token context" "a window as long as the context" -- "$GS" generate --model gpt2-tiny -n 1 -c "$TMP/win.yaml"

expect 0 '' "live demo on a tiny model" -- "$GS" --model llama-tiny -n 4
grep -q "matmul_qkv" "$TMP/out"
ok $? "the demo prints the per-op table"

echo "1..$n"
[ $fails -eq 0 ]
