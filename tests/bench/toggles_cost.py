#!/usr/bin/env python3
"""toggles_cost.py - the cost table of the optimization toggles, measured.

Runs `gptscope bench --json` once per variant (each a separate process on the
same device, one after another), on a base configuration, and prints a
Markdown table: decode and prefill speed, weight bytes, KV bytes per token,
DRAM bytes per token (GPU, when measured), peak memory, KL / top-1 /
perplexity against the fp32 baseline, and the ratio of decode speed to the
first variant (the reference row).

    python3 tests/bench/toggles_cost.py GPTSCOPE [--model gpt2-124m] [--backend cuda]
        [--set 124m|1558m|stories] [--out FILE.md] [--json FILE.jsonl] [--dram] [--only LABELS]
        [extra bench options, e.g. --gen-len 256]
"""
import argparse
import json
import subprocess
import sys

BASE = ["--weights", "fp16", "--attention", "fused", "--cuda-graphs", "on", "--fusion", "on"]

SETS = {
    # name: (model, base options, [(label, options)])
    "124m": ("gpt2-124m", BASE, [
        ("fp16 (reference)", []),
        ("bf16", ["--weights", "bf16"]),
        ("int8", ["--weights", "int8"]),
        ("int4 g128", ["--weights", "int4", "--group-size", "128"]),
        ("int4 g32", ["--weights", "int4", "--group-size", "32"]),
        ("KV fp16", ["--kv", "fp16"]),
        ("KV int8", ["--kv", "int8"]),
        ("KV fp8", ["--kv", "fp8"]),
        ("unstructured 50%", ["--sparsity", "unstructured:0.5"]),
        ("2:4", ["--sparsity", "2:4"]),
        ("heads 25%", ["--sparsity", "heads:0.25"]),
        ("neurons 50%", ["--sparsity", "neurons:0.5"]),
        ("GQA 3 KV heads", ["--kv-heads", "3"]),
        ("MQA", ["--kv-heads", "1"]),
        ("window 256 + 4 sinks", ["--window", "256", "--sinks", "4"]),
        ("naive attention", ["--attention", "naive"]),
        ("no CUDA graphs", ["--cuda-graphs", "off"]),
        ("no fusion", ["--fusion", "off"]),
        ("fp32", ["--weights", "fp32"]),
    ]),
    "1558m": ("gpt2-1558m", BASE, [
        ("fp16 (reference)", []),
        ("int8", ["--weights", "int8"]),
        ("int4 g128", ["--weights", "int4", "--group-size", "128"]),
        ("int4 g64", ["--weights", "int4", "--group-size", "64"]),
        ("KV int8", ["--kv", "int8"]),
        ("unstructured 50%", ["--sparsity", "unstructured:0.5"]),
        ("neurons 50%", ["--sparsity", "neurons:0.5"]),
    ]),
    # Quality on the real tiny model: every weight precision and sparsity level.
    "stories": (None, [], [
        ("fp32 (reference)", ["--weights", "fp32"]),
        ("fp16", ["--weights", "fp16"]),
        ("bf16", ["--weights", "bf16"]),
        ("int8", ["--weights", "int8"]),
        ("int4 g32", ["--weights", "int4", "--group-size", "32"]),
        ("int4 g64", ["--weights", "int4", "--group-size", "64"]),
        ("unstructured 25%", ["--sparsity", "unstructured:0.25"]),
        ("unstructured 50%", ["--sparsity", "unstructured:0.5"]),
        ("unstructured 75%", ["--sparsity", "unstructured:0.75"]),
        ("2:4", ["--sparsity", "2:4"]),
        ("heads 25%", ["--sparsity", "heads:0.25"]),
        ("heads 50%", ["--sparsity", "heads:0.5"]),
        ("neurons 25%", ["--sparsity", "neurons:0.25"]),
        ("neurons 50%", ["--sparsity", "neurons:0.5"]),
        ("MQA (1 KV head)", ["--kv-heads", "1"]),
        ("KV int8", ["--kv", "int8"]),
        ("KV fp16", ["--kv", "fp16"]),
        ("window 64 + 4 sinks", ["--window", "64", "--sinks", "4"]),
    ]),
}


def fmt_bytes(b):
    if b is None:
        return "n/a"
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= div:
            return "%.2f %s" % (b / div, unit)
    return "%d B" % b


def num(d, key, f="%.3g"):
    v = d.get(key)
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return str(v).lower()
    return f % v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gptscope")
    ap.add_argument("--set", default="124m", choices=sorted(SETS))
    ap.add_argument("--model")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--out")
    ap.add_argument("--json")
    ap.add_argument("--dram", action="store_true",
                    help="a second run per variant with hardware metrics (CUDA) for DRAM bytes per decoded token")
    ap.add_argument("--only", help="comma-separated variant labels to run (default: all of the set)")
    a, extra = ap.parse_known_args()
    a.extra = [x for x in extra if x != "--"]  # the rest goes to every bench run
    model, base, variants = SETS[a.set]
    model = a.model or model
    if model is None:
        sys.exit("--model is needed for this set (a checkpoint path)")
    rows, ref = [], None
    jl = open(a.json, "w") if a.json else None
    if a.only:
        keep = set(x.strip() for x in a.only.split(","))
        variants = [v for v in variants if v[0] in keep]
    for label, opts in variants:
        cmd = [a.gptscope, "bench", "--model", model, "--backend", a.backend, "--json"] + base + opts + a.extra
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            msg = (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]
            rows.append("| %s | refused or failed: %s |" % (label, msg.replace("|", "/")) + " |" * 11)
            print(label, "FAILED:", msg, file=sys.stderr)
            continue
        d = json.loads(p.stdout)
        d["variant"] = label
        if a.dram:
            # Metrics steps replay every kernel many times: a run of its own,
            # so the timings above are untouched. Steps 7, 15, 23 are sampled:
            # decode steps after an 8-token prompt. Graphs off: the counters
            # replay kernels one by one (the bytes a token moves are the same).
            mcmd = [a.gptscope, "bench", "--model", model, "--backend", a.backend, "--json", "--no-quality",
                    "--profile", "--metrics-every", "8", "--metrics-set", "fast", "--prompt-len", "8",
                    "--gen-len", "25"] + base + opts + a.extra + ["--cuda-graphs", "off"]
            mp = subprocess.run(mcmd, capture_output=True, text=True)
            if mp.returncode == 0:
                d["dram_bytes_per_token"] = json.loads(mp.stdout).get("dram_bytes_per_token")
        if jl:
            jl.write(json.dumps(d) + "\n")
        if ref is None:
            ref = d
        tps = d.get("decode_tokens_per_s")
        ratio = tps / ref["decode_tokens_per_s"] if tps and ref.get("decode_tokens_per_s") else None
        prefill_ms = d["prefill_s"] * 1e3 if d.get("prefill_s") is not None else None
        rows.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            label, num(d, "ms_per_decode_step", "%.3f"), num(d, "decode_tokens_per_s", "%.0f"),
            "%.2fx" % ratio if ratio else "n/a", "%.2f" % prefill_ms if prefill_ms is not None else "n/a",
            fmt_bytes(d.get("weight_bytes")), fmt_bytes(d.get("kv_bytes_per_token")),
            fmt_bytes(d.get("dram_bytes_per_token")), fmt_bytes(d.get("peak_memory_bytes")),
            num(d, "kl", "%.4f"), num(d, "top1", "%.3f"), num(d, "perplexity", "%.3f"),
            "n/a" if d.get("quality_illustrative") is None else "yes" if d["quality_illustrative"] else "no"))
        print(rows[-1], file=sys.stderr)
    head = ["| variant | ms/token | tok/s | vs ref | prefill ms | weights | KV/token | DRAM/token | peak mem | KL | top-1 | ppl | illustrative |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    dev = ref.get("device", "?") if ref else "?"
    text = "%s on %s (%s), base: %s\n\n" % (model, dev, a.backend, " ".join(base + a.extra) or "defaults")
    text += "\n".join(head + rows) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
