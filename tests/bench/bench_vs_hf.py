"""bench_vs_hf.py - gptscope beside Hugging Face transformers, same shapes, one run.

For each case (model, batch, prompt, generated tokens) it runs
`gptscope bench --json` and the same workload in transformers (PyTorch eager,
fp16, random weights, KV cache on), and prints tokens/s side by side with the
floor gptscope measured (weight bytes over its measured read bandwidth).
Prefill cases (one generated token) take each side's best of three runs;
decode cases one run of each (gen - 1 steps averaged).

usage: python3 bench_vs_hf.py GPTSCOPE [--backend cuda] [--quick]
"""
import argparse
import json
import subprocess
import time

import torch
import transformers

ap = argparse.ArgumentParser()
ap.add_argument("gptscope")
ap.add_argument("--backend", default="cuda")
ap.add_argument("--quick", action="store_true")
ap.add_argument("--config", help="a YAML file for gptscope (optimizations such as weights: fp16)")
args = ap.parse_args()

SHAPES = {"gpt2-124m": (12, 12, 768), "gpt2-355m": (24, 16, 1024), "gpt2-1558m": (48, 25, 1600)}
CASES = [  # model, batch, prompt, generate
    ("gpt2-124m", 1, 16, 128),
    ("gpt2-124m", 16, 16, 128),
    ("gpt2-124m", 1, 1024, 1),
    ("gpt2-355m", 1, 16, 128),
]
if not args.quick:
    CASES.append(("gpt2-1558m", 1, 16, 64))


def hf_case(model_name, batch, prompt, gen):
    """transformers' own generate() (greedy, KV cache), as its users run it.
    Decode time = time(prompt + gen tokens) - time(prompt + 1 token)."""
    L, H, C = SHAPES[model_name]
    cfg = transformers.GPT2Config(n_layer=L, n_head=H, n_embd=C, n_positions=1024, vocab_size=50257)
    torch.manual_seed(0)
    m = transformers.GPT2LMHeadModel(cfg).to("cuda", torch.float16).eval()
    ids = torch.randint(0, 50257, (batch, prompt), device="cuda")
    mask = torch.ones_like(ids)

    def timed(new_tokens):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        m.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                   do_sample=False, pad_token_id=0)
        torch.cuda.synchronize()
        return time.perf_counter() - t0

    with torch.no_grad():
        for _ in range(2):  # warm-up
            timed(min(gen, 8))
        prefill_s = min(timed(1) for _ in range(3))
        decode_s = (timed(gen) - prefill_s) if gen > 1 else 0.0
    del m
    torch.cuda.empty_cache()
    return prefill_s, (batch * (gen - 1) / decode_s) if decode_s > 0 else 0.0


def host_cpu():
    """The host CPU's model name: transformers' eager decode is launch-bound, so its
    figures follow the host that drives the GPU (the same H100 behind two hosts
    gave 1.5x apart), and a table is only comparable with one from the same host."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


print(f"transformers {transformers.__version__}, torch {torch.__version__}, {torch.cuda.get_device_name()}, "
      f"host {host_cpu()}")
print(f"gptscope configuration: {args.config or 'defaults (fp32 weights, naive attention)'}")
print(f"{'case':<34} {'gptscope':>12} {'transformers':>13} {'floor':>12}  notes")
for model_name, batch, prompt, gen in CASES:
    cmd = [args.gptscope, "bench", "--backend", args.backend, "--model", model_name, "--batch", str(batch),
           "--prompt-len", str(prompt), "--gen-len", str(gen), "--json", "--no-quality"] + (["-c", args.config] if args.config else [])
    if gen == 1:  # a prefill case: the best of three runs on both sides, as hf_case times transformers' prefill
        cmd += ["--repeat", "3"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"{model_name} b{batch}: gptscope failed: {r.stderr.strip()}")
        continue
    g = json.loads(r.stdout)
    hf_prefill, hf_tps = hf_case(model_name, batch, prompt, gen)
    case = f"{model_name} batch {batch} prompt {prompt}"
    if gen == 1:
        print(f"{case + ' prefill ms':<34} {1e3 * g['prefill_s']:>12.2f} {1e3 * hf_prefill:>13.2f} "
              f"{1e3 * batch * prompt / g['prefill_floor_tokens_per_s']:>9.3f} ms  floor: FLOPs / measured matmul rate ({g['measured_matmul_gflops']:.0f} GFLOP/s)")
    else:
        floor_tps = batch * 1e3 / g["decode_floor_ms_per_step"]
        print(f"{case + ' decode tok/s':<34} {g['decode_tokens_per_s']:>12.1f} {hf_tps:>13.1f} {floor_tps:>12.1f}  "
              f"{g['ms_per_decode_step']:.3f} ms/step; floor: {g['weight_bytes'] / 1e6:.0f} MB weights / {g['measured_matvec_gb_per_s']:.0f} GB/s")
