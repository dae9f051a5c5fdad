#!/usr/bin/env python3
"""Generate tiny Hugging Face reference fixtures for gptscope's C forward passes.

Usage: python3 tests/bench/hf_reference.py OUTDIR

Builds (on CPU, float32, deterministic seeds):
  * a tiny GPT2LMHeadModel  -> gpt2_tiny.{safetensors,config.json,ids.i32,logits.f32}
  * a tiny LlamaForCausalLM -> llama_tiny.{safetensors,config.json,ids.i32,logits.f32}

.ids.i32    : 24 little-endian int32 token ids
.logits.f32 : [24][256] little-endian float32 logits, row-major (position-major)

As a self-check it also (a) reloads each saved model with from_pretrained and
re-runs the forward pass, and (b) recomputes the logits with an independent
float64 numpy implementation that reads the safetensors file directly; the
max abs differences are printed.  These checks never stop the fixture files
from being written.
"""
import json
import math
import os
import shutil
import struct
import sys
import tempfile

import numpy as np
import torch
import transformers
from torch import nn

SEQ = 24
VOCAB = 256
IDS_SEED = 42


def log(*a):
    print(*a, flush=True)


def safetensors_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
    return n, hdr


def load_safetensors_np(path):
    n, hdr = safetensors_header(path)
    data = open(path, "rb").read()[8 + n:]
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", (k, v["dtype"])
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype="<f4").reshape(v["shape"]).astype(np.float64)
    return out


def print_tensors(path):
    n, hdr = safetensors_header(path)
    log(f"  {os.path.basename(path)}: {os.path.getsize(path)} bytes, header {n} bytes")
    if "__metadata__" in hdr:
        log(f"  __metadata__ = {hdr['__metadata__']}")
    for k in sorted(hdr):
        if k == "__metadata__":
            continue
        v = hdr[k]
        log(f"    {k:45s} {v['dtype']} {v['shape']}")


def save_model(model, outdir, stem):
    tmp = tempfile.mkdtemp(prefix=stem + "_")
    try:
        model.save_pretrained(tmp, safe_serialization=True)
    except TypeError:
        # transformers v5 removed safe_serialization (safetensors is the only format)
        model.save_pretrained(tmp)
    files = sorted(os.listdir(tmp))
    log(f"  save_pretrained wrote: {files}")
    st = os.path.join(tmp, "model.safetensors")
    assert os.path.exists(st), "expected a single unsharded model.safetensors"
    shutil.copyfile(st, os.path.join(outdir, stem + ".safetensors"))
    shutil.copyfile(os.path.join(tmp, "config.json"), os.path.join(outdir, stem + ".config.json"))
    return tmp


def force_eager(model):
    if hasattr(model, "set_attn_implementation"):
        try:
            model.set_attn_implementation("eager")
        except Exception as e:  # noqa: BLE001
            log("  set_attn_implementation failed:", repr(e))
    model.config._attn_implementation = "eager"
    log("  attn implementation:", model.config._attn_implementation)


def make_ids():
    g = torch.Generator().manual_seed(IDS_SEED)
    return torch.randint(0, VOCAB, (SEQ,), generator=g, dtype=torch.long)


def run_forward(model, ids):
    model.eval()
    with torch.no_grad():
        out = model(input_ids=ids[None, :], use_cache=False)
    logits = out.logits[0].float().contiguous()
    assert tuple(logits.shape) == (SEQ, VOCAB), logits.shape
    return logits


def write_outputs(outdir, stem, ids, logits):
    ids.to(torch.int32).numpy().astype("<i4").tofile(os.path.join(outdir, stem + ".ids.i32"))
    logits.numpy().astype("<f4").tofile(os.path.join(outdir, stem + ".logits.f32"))
    log(f"  ids   = {ids.tolist()}")
    log(f"  top1  = {logits.argmax(-1).tolist()}")
    log(f"  logits std {logits.std().item():.4f}, min {logits.min().item():.4f}, max {logits.max().item():.4f}")
    log(f"  logits[0][:4]  = {[round(x, 6) for x in logits[0, :4].tolist()]}")
    log(f"  logits[23][:4] = {[round(x, 6) for x in logits[23, :4].tolist()]}")


# ----------------------------------------------------------------------------- numpy references

def np_layernorm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def np_softmax(s):
    s = s - s.max(-1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(-1, keepdims=True)


def np_causal_attn(q, k, v):
    # q [H,T,D], k/v [H,T,D]
    T, D = q.shape[1], q.shape[2]
    s = q @ k.transpose(0, 2, 1) / math.sqrt(D)
    mask = np.triu(np.ones((T, T), dtype=bool), 1)
    s[:, mask] = -np.inf
    return np_softmax(s) @ v


def np_gpt2(W, cfg, ids):
    E, H, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    eps = cfg["layer_norm_epsilon"]
    D = E // H
    T = len(ids)
    x = W["transformer.wte.weight"][ids] + W["transformer.wpe.weight"][:T]
    for i in range(L):
        p = f"transformer.h.{i}."
        h = np_layernorm(x, W[p + "ln_1.weight"], W[p + "ln_1.bias"], eps)
        qkv = h @ W[p + "attn.c_attn.weight"] + W[p + "attn.c_attn.bias"]  # Conv1D: [in][out]
        q, k, v = qkv[:, :E], qkv[:, E:2 * E], qkv[:, 2 * E:]
        sh = lambda t: t.reshape(T, H, D).transpose(1, 0, 2)
        a = np_causal_attn(sh(q), sh(k), sh(v)).transpose(1, 0, 2).reshape(T, E)
        x = x + a @ W[p + "attn.c_proj.weight"] + W[p + "attn.c_proj.bias"]
        h = np_layernorm(x, W[p + "ln_2.weight"], W[p + "ln_2.bias"], eps)
        m = h @ W[p + "mlp.c_fc.weight"] + W[p + "mlp.c_fc.bias"]
        m = 0.5 * m * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (m + 0.044715 * m ** 3)))
        x = x + m @ W[p + "mlp.c_proj.weight"] + W[p + "mlp.c_proj.bias"]
    x = np_layernorm(x, W["transformer.ln_f.weight"], W["transformer.ln_f.bias"], eps)
    lm = W.get("lm_head.weight", W["transformer.wte.weight"])  # tied
    return x @ lm.T


def np_rmsnorm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def np_llama(W, cfg, ids, theta):
    E, H, KV, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["num_hidden_layers"]
    eps = cfg["rms_norm_eps"]
    D = cfg.get("head_dim") or E // H
    T = len(ids)
    inv_freq = 1.0 / (theta ** (np.arange(0, D, 2, dtype=np.float64) / D))  # [D/2]
    ang = np.arange(T, dtype=np.float64)[:, None] * inv_freq[None, :]      # [T,D/2]
    cos = np.concatenate([np.cos(ang), np.cos(ang)], -1)                  # [T,D]
    sin = np.concatenate([np.sin(ang), np.sin(ang)], -1)

    def rope(t):  # t [nh,T,D], rotate_half convention (pairs i and i+D/2)
        t1, t2 = t[..., : D // 2], t[..., D // 2:]
        return t * cos + np.concatenate([-t2, t1], -1) * sin

    x = W["model.embed_tokens.weight"][ids]
    for i in range(L):
        p = f"model.layers.{i}."
        h = np_rmsnorm(x, W[p + "input_layernorm.weight"], eps)
        q = (h @ W[p + "self_attn.q_proj.weight"].T).reshape(T, H, D).transpose(1, 0, 2)   # nn.Linear: [out][in]
        k = (h @ W[p + "self_attn.k_proj.weight"].T).reshape(T, KV, D).transpose(1, 0, 2)
        v = (h @ W[p + "self_attn.v_proj.weight"].T).reshape(T, KV, D).transpose(1, 0, 2)
        q, k = rope(q), rope(k)
        rep = H // KV
        k = np.repeat(k, rep, axis=0)  # q head j uses kv head j // rep
        v = np.repeat(v, rep, axis=0)
        a = np_causal_attn(q, k, v).transpose(1, 0, 2).reshape(T, H * D)
        x = x + a @ W[p + "self_attn.o_proj.weight"].T
        h = np_rmsnorm(x, W[p + "post_attention_layernorm.weight"], eps)
        g = h @ W[p + "mlp.gate_proj.weight"].T
        u = h @ W[p + "mlp.up_proj.weight"].T
        x = x + ((g / (1.0 + np.exp(-g))) * u) @ W[p + "mlp.down_proj.weight"].T
    x = np_rmsnorm(x, W["model.norm.weight"], eps)
    lm = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    return x @ lm.T


def self_checks(cls, tmpdir, outdir, stem, ids, logits, np_fn):
    try:
        m2 = cls.from_pretrained(tmpdir, attn_implementation="eager", dtype=torch.float32)
    except TypeError:
        m2 = cls.from_pretrained(tmpdir, attn_implementation="eager", torch_dtype=torch.float32)
    try:
        l2 = run_forward(m2, ids)
        log(f"  check reload(from_pretrained) max|diff| = {(l2 - logits).abs().max().item():.3e}")
    except Exception as e:  # noqa: BLE001
        log("  check reload FAILED:", repr(e))
    try:
        W = load_safetensors_np(os.path.join(outdir, stem + ".safetensors"))
        cfg = json.load(open(os.path.join(outdir, stem + ".config.json")))
        ref = np_fn(W, cfg, ids.numpy())
        d = np.abs(ref - logits.numpy().astype(np.float64)).max()
        log(f"  check numpy-f64 reference max|diff| = {d:.3e}  (top1 agree: "
            f"{bool((ref.argmax(-1) == logits.numpy().argmax(-1)).all())})")
    except Exception as e:  # noqa: BLE001
        log("  check numpy reference FAILED:", repr(e))


# ----------------------------------------------------------------------------- models

def build_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(1234)
    cfg = GPT2Config(
        vocab_size=VOCAB, n_positions=64, n_embd=64, n_layer=2, n_head=4,
        activation_function="gelu_new", layer_norm_epsilon=1e-5,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        initializer_range=0.1, tie_word_embeddings=True,
        attn_implementation="eager",
    )
    model = GPT2LMHeadModel(cfg).float().eval()
    force_eager(model)
    torch.manual_seed(4321)
    n_ln = n_b = 0
    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, nn.LayerNorm):
                mod.weight.copy_(1.0 + 0.1 * torch.randn_like(mod.weight))
                mod.bias.copy_(0.1 * torch.randn_like(mod.bias))
                n_ln += 1
            elif type(mod).__name__ in ("Conv1D", "Linear") and getattr(mod, "bias", None) is not None:
                mod.bias.copy_(0.02 * torch.randn_like(mod.bias))
                n_b += 1
    log(f"  perturbed {n_ln} LayerNorms, {n_b} linear/Conv1D biases")
    if not (n_ln == 2 * 2 + 1 and n_b == 4 * 2):
        log("  WARNING: unexpected module counts (expected 5 LayerNorms, 8 biases)")
    tied = model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    log(f"  lm_head tied to wte in memory: {tied}")
    return cls_and(GPT2LMHeadModel, model)


def build_llama():
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(2345)
    common = dict(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=172, num_hidden_layers=2,
        num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=64,
        rms_norm_eps=1e-5, tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
        hidden_act="silu", attention_dropout=0.0, initializer_range=0.1,
        attn_implementation="eager",
    )
    try:
        cfg = LlamaConfig(rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, **common)
    except TypeError:
        cfg = LlamaConfig(rope_theta=10000.0, rope_scaling=None, **common)
    log("  config rope_parameters:", getattr(cfg, "rope_parameters", None),
        "| rope_theta attr:", getattr(cfg, "rope_theta", None),
        "| rope_scaling attr:", getattr(cfg, "rope_scaling", None))
    model = LlamaForCausalLM(cfg).float().eval()
    force_eager(model)
    torch.manual_seed(5432)
    n = 0
    with torch.no_grad():
        for name, mod in model.named_modules():
            if type(mod).__name__.endswith("RMSNorm"):
                mod.weight.copy_(1.0 + 0.1 * torch.randn_like(mod.weight))
                n += 1
    log(f"  perturbed {n} RMSNorms")
    if n != 2 * 2 + 1:
        log("  WARNING: expected 5 RMSNorms")
    # verify plain RoPE
    try:
        re = model.model.rotary_emb
        D = 64 // 8
        want = 1.0 / (10000.0 ** (torch.arange(0, D, 2, dtype=torch.float32) / D))
        log(f"  rotary_emb: type={getattr(re, 'rope_type', '?')} attention_scaling={getattr(re, 'attention_scaling', '?')} "
            f"inv_freq={[round(x, 7) for x in re.inv_freq.tolist()]} "
            f"matches default: {torch.allclose(re.inv_freq.float(), want)}")
    except Exception as e:  # noqa: BLE001
        log("  rotary_emb check failed:", repr(e))
    return cls_and(LlamaForCausalLM, model)


def cls_and(cls, model):
    return cls, model


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: hf_reference.py OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.set_default_dtype(torch.float32)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    log(f"torch {torch.__version__}  transformers {transformers.__version__}  numpy {np.__version__}  python {sys.version.split()[0]}")

    for stem, build, np_fn in (("gpt2_tiny", build_gpt2, np_gpt2),
                               ("llama_tiny", build_llama,
                                lambda W, c, i: np_llama(W, c, i, 10000.0))):
        log(f"== {stem}")
        cls, model = build()
        log(f"  params: {sum(p.numel() for p in model.parameters())}")
        tmp = save_model(model, outdir, stem)
        print_tensors(os.path.join(outdir, stem + ".safetensors"))
        ids = make_ids()
        logits = run_forward(model, ids)
        write_outputs(outdir, stem, ids, logits)
        self_checks(cls, tmp, outdir, stem, ids, logits, np_fn)
        shutil.rmtree(tmp, ignore_errors=True)

    log("== files")
    for f in sorted(os.listdir(outdir)):
        log(f"  {f:28s} {os.path.getsize(os.path.join(outdir, f))}")


if __name__ == "__main__":
    main()
