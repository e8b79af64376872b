#!/usr/bin/env python3
"""Write a synthetic Kronos checkpoint pair in the Hugging Face layout (numpy only).

    tools/synth_checkpoint.py --preset {tiny,mini,small,base} --seed N OUT_DIR

writes OUT_DIR/tokenizer/{config.json,model.safetensors} and OUT_DIR/predictor/{...} with the
released models' shapes (KRONOS.md table). Weights are random (normal, std 0.02; norms 1; rotary
inv_freq and BSQ basis buffers as the model computes them), for tests and benchmarks of the
converter and runtime, not for forecasting.

Options: --dtype F32|F16|BF16 (float tensors), --shards N (split each model.safetensors into N
shards with a model.safetensors.index.json, as large Hugging Face checkpoints are).
"""
import argparse
import json
import os
import struct

import numpy as np

TOKENIZER_BASE = dict(d_in=6, d_model=256, n_heads=4, ff_dim=512, n_enc_layers=4, n_dec_layers=4)
PRESETS = {
    # name: (tokenizer shape, predictor shape)
    "tiny": (dict(d_in=6, d_model=32, n_heads=2, ff_dim=64, n_enc_layers=2, n_dec_layers=2, bits=6),
             dict(d_model=32, n_heads=2, ff_dim=64, n_layers=2, bits=6)),
    "mini": (dict(TOKENIZER_BASE, bits=10), dict(d_model=256, n_heads=4, ff_dim=512, n_layers=4, bits=10)),
    "small": (dict(TOKENIZER_BASE, bits=10), dict(d_model=512, n_heads=8, ff_dim=1024, n_layers=8, bits=10)),
    "base": (dict(TOKENIZER_BASE, bits=10), dict(d_model=832, n_heads=16, ff_dim=2048, n_layers=12, bits=10)),
}


def block(prefix, d, heads, ff, t):
    hd = d // heads
    t[f"{prefix}.norm1.weight"] = ("norm", [d])
    for p in ("q", "k", "v", "out"):
        t[f"{prefix}.self_attn.{p}_proj.weight"] = ("w", [d, d])
        t[f"{prefix}.self_attn.{p}_proj.bias"] = ("b", [d])
    t[f"{prefix}.self_attn.rotary.inv_freq"] = ("inv_freq", [hd // 2])
    t[f"{prefix}.norm2.weight"] = ("norm", [d])
    t[f"{prefix}.ffn.w1.weight"] = ("w", [ff, d])
    t[f"{prefix}.ffn.w3.weight"] = ("w", [ff, d])
    t[f"{prefix}.ffn.w2.weight"] = ("w", [d, ff])


def linear(name, out, inp, t):
    t[f"{name}.weight"] = ("w", [out, inp])
    t[f"{name}.bias"] = ("b", [out])


def tokenizer_tensors(c):
    t = {}
    d, C = c["d_model"], 2 * c["bits"]
    linear("embed", d, c["d_in"], t)
    for i in range(c["n_enc_layers"] - 1):
        block(f"encoder.{i}", d, c["n_heads"], c["ff_dim"], t)
    for i in range(c["n_dec_layers"] - 1):
        block(f"decoder.{i}", d, c["n_heads"], c["ff_dim"], t)
    linear("quant_embed", C, d, t)
    linear("post_quant_embed_pre", d, c["bits"], t)
    linear("post_quant_embed", d, C, t)
    linear("head", c["d_in"], d, t)
    t["tokenizer.bsq.basis"] = ("basis", [C])
    t["tokenizer.bsq.group_basis"] = ("basis", [4])
    return t


def predictor_tensors(c):
    t = {}
    d, V = c["d_model"], 1 << c["bits"]
    t["embedding.emb_s1.weight"] = ("emb", [V, d])
    t["embedding.emb_s2.weight"] = ("emb", [V, d])
    linear("embedding.fusion_proj", d, 2 * d, t)
    for name, rows in (("minute", 60), ("hour", 24), ("weekday", 7), ("day", 32), ("month", 13)):
        t[f"time_emb.{name}_embed.weight"] = ("emb", [rows, d])
    for i in range(c["n_layers"]):
        block(f"transformer.{i}", d, c["n_heads"], c["ff_dim"], t)
    t["norm.weight"] = ("norm", [d])
    for p in ("q", "k", "v", "out"):
        linear(f"dep_layer.cross_attn.{p}_proj", d, d, t)
    t["dep_layer.cross_attn.rotary.inv_freq"] = ("inv_freq", [d // 8])
    t["dep_layer.norm.weight"] = ("norm", [d])
    linear("head.proj_s1", V, d, t)
    linear("head.proj_s2", V, d, t)
    return t


def make(kind, shape, rng, dtype):
    n = int(np.prod(shape))
    if kind == "basis":
        return (2 ** np.arange(n - 1, -1, -1, dtype=np.int64)).reshape(shape), "I64"  # highest power first, as the reference stores it
    if kind == "inv_freq":
        hd = 2 * n
        a = (1.0 / (10000 ** (np.arange(0, hd, 2, dtype=np.float32) / hd))).astype(np.float32)
    elif kind == "norm":
        a = (1.0 + 0.05 * rng.standard_normal(n, dtype=np.float32)).astype(np.float32)
    elif kind == "b":
        a = 0.01 * rng.standard_normal(n, dtype=np.float32)
    elif kind == "emb":
        a = rng.standard_normal(n, dtype=np.float32)
    else:
        a = 0.02 * rng.standard_normal(n, dtype=np.float32)
    a = a.reshape(shape)
    if dtype == "F16":
        return a.astype(np.float16), "F16"
    if dtype == "BF16":
        bits = (a.view(np.uint32) + 0x7FFF + ((a.view(np.uint32) >> 16) & 1)) >> 16  # round to nearest even
        return bits.astype(np.uint16), "BF16"
    return a, "F32"


def write_safetensors(path, arrays):
    """arrays: list of (name, array, dtype string), written in the given order."""
    header, offset = {}, 0
    for name, a, dt in arrays:
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, a, _ in arrays:
            f.write(np.ascontiguousarray(a).tobytes())


def write_model(directory, config, tensors, rng, dtype, shards):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    arrays = []
    for name in sorted(tensors):
        kind, shape = tensors[name]
        a, dt = make(kind, shape, rng, dtype)
        arrays.append((name, a, dt))
    for stale in os.listdir(directory):
        if stale.startswith("model") and stale.endswith((".safetensors", ".json")):
            os.remove(os.path.join(directory, stale))
    if shards <= 1:
        write_safetensors(os.path.join(directory, "model.safetensors"), arrays)
        return
    per = (len(arrays) + shards - 1) // shards
    weight_map = {}
    for s in range(shards):
        part = arrays[s * per:(s + 1) * per]
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        write_safetensors(os.path.join(directory, fname), part)
        weight_map.update({n: fname for n, _, _ in part})
    total = sum(a.nbytes for _, a, _ in arrays)
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["F32", "F16", "BF16"], default="F32")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("out_dir")
    args = ap.parse_args()
    tok, pred = PRESETS[args.preset]
    rng = np.random.default_rng(args.seed)
    tok_config = dict(d_in=tok["d_in"], d_model=tok["d_model"], n_heads=tok["n_heads"], ff_dim=tok["ff_dim"],
                      n_enc_layers=tok["n_enc_layers"], n_dec_layers=tok["n_dec_layers"],
                      ffn_dropout_p=0.0, attn_dropout_p=0.0, resid_dropout_p=0.0,
                      s1_bits=tok["bits"], s2_bits=tok["bits"], beta=0.05, gamma0=1.0, gamma=1.1, zeta=0.05,
                      group_size=4)
    pred_config = dict(s1_bits=pred["bits"], s2_bits=pred["bits"], n_layers=pred["n_layers"],
                       d_model=pred["d_model"], n_heads=pred["n_heads"], ff_dim=pred["ff_dim"],
                       ffn_dropout_p=0.0, attn_dropout_p=0.0, resid_dropout_p=0.0, token_dropout_p=0.0,
                       learn_te=True)
    write_model(os.path.join(args.out_dir, "tokenizer"), tok_config, tokenizer_tensors(tok_config | {"bits": tok["bits"]}),
                rng, args.dtype, args.shards)
    write_model(os.path.join(args.out_dir, "predictor"), pred_config, predictor_tensors(pred_config | {"bits": pred["bits"]}),
                rng, args.dtype, args.shards)


if __name__ == "__main__":
    main()
