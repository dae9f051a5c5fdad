"""hf_compare.py - gptscope's GPT-2 path against Hugging Face transformers.

Builds a seeded random GPT-2 (default: the 124M shape) in transformers, saves
it as safetensors, then runs greedy generation in both (transformers fp32 and
fp16 on the GPU, gptscope through `generate --logits-out`) and compares the
logits of every step by relative norm error and the chosen ids.

usage: python3 hf_compare.py GPTSCOPE OUTDIR [--backend cuda] [--layers 12 --embd 768 --heads 12]
Exit status 1 if the fp32 error reaches 1e-4.
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import torch
import transformers

ap = argparse.ArgumentParser()
ap.add_argument("gptscope")
ap.add_argument("outdir")
ap.add_argument("--backend", default="cuda")
ap.add_argument("--layers", type=int, default=12)
ap.add_argument("--embd", type=int, default=768)
ap.add_argument("--heads", type=int, default=12)
ap.add_argument("--prompt", type=int, default=32)
ap.add_argument("--gen", type=int, default=16)
args = ap.parse_args()

torch.manual_seed(1234)
cfg = transformers.GPT2Config(n_layer=args.layers, n_embd=args.embd, n_head=args.heads, n_positions=1024,
                              vocab_size=50257, activation_function="gelu_new", layer_norm_epsilon=1e-5)
model = transformers.GPT2LMHeadModel(cfg).eval()
with torch.no_grad():  # trained-looking norms and biases, not 1 and 0
    for name, p in model.named_parameters():
        if "ln" in name and name.endswith("weight"):
            p.copy_(1 + 0.1 * torch.randn_like(p))
        elif name.endswith("bias"):
            p.copy_(0.02 * torch.randn_like(p))
os.makedirs(args.outdir, exist_ok=True)
model.save_pretrained(args.outdir)
st = os.path.join(args.outdir, "model.safetensors")
ids = torch.randint(0, 50257, (1, args.prompt), generator=torch.Generator().manual_seed(7))


def hf_greedy(dtype):
    m = model.to(device="cuda", dtype=dtype)
    with torch.no_grad():
        out = m.generate(ids.cuda(), max_new_tokens=args.gen, do_sample=False, output_logits=True,
                         return_dict_in_generate=True, pad_token_id=0)
    logits = torch.stack(out.logits, 0)[:, 0, :].float().cpu().numpy()
    return out.sequences[0, args.prompt:].cpu().numpy(), logits


torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
hf32_ids, hf32 = hf_greedy(torch.float32)
hf16_ids, hf16 = hf_greedy(torch.float16)

lf = os.path.join(args.outdir, "gptscope.logits.f32")
cmd = [args.gptscope, "generate", "--backend", args.backend, "--model", st, "-n", str(args.gen),
       "--prompt-ids", ",".join(str(int(i)) for i in ids[0]), "--logits-out", lf]
res = subprocess.run(cmd, capture_output=True, text=True)
if res.returncode != 0:
    print("gptscope failed:", res.stderr.strip())
    sys.exit(1)
gs_ids = np.array([int(t) for t in res.stdout.split()])
gs = np.fromfile(lf, dtype=np.float32).reshape(args.gen, -1)


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


print(f"transformers {transformers.__version__}, torch {torch.__version__}, {torch.cuda.get_device_name()}")
print(f"GPT-2 {args.layers} layers x {args.embd} wide, prompt {args.prompt}, greedy {args.gen} tokens, gptscope --backend {args.backend}")
print(f"{'step':>4} {'rel err vs fp32':>16} {'rel err vs fp16':>16}  ids (gptscope / hf fp32 / hf fp16)")
worst32 = 0.0
agree = 0
for s in range(args.gen):
    # Compare each step on the same history: only while the ids agree.
    if s > 0 and gs_ids[s - 1] != hf32_ids[s - 1]:
        break
    e32, e16 = rel(gs[s], hf32[s]), rel(gs[s], hf16[s])
    worst32 = max(worst32, e32)
    agree += int(gs_ids[s] == hf32_ids[s])
    print(f"{s:>4} {e32:>16.2e} {e16:>16.2e}  {gs_ids[s]} / {hf32_ids[s]} / {hf16_ids[s]}")
print(f"fp32: worst relative logits error {worst32:.2e} (bound 1e-4); {agree}/{args.gen} greedy ids agree")
sys.exit(0 if worst32 < 1e-4 else 1)
