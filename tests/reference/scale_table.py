"""scale_table.py: memory and compute per model size, for docs/scale-out.md.

    /usr/bin/python3 tests/reference/scale_table.py

Prints a Markdown table: parameters (counted by twin.param_shapes, exactly),
training memory per parameter, activation memory per token, and FLOPs per
token, for our presets and a few larger shapes. The formulas:

- state: float32 weights, gradients, AdamW m and v, and the EMA: 20 bytes a
  parameter, on every DDP rank (FSDP would divide it by the ranks).
- activations per token, float32, what autograd keeps of twin.py's forward:
  per layer 12·d (norm inputs and outputs, q, k, v, rotated q and k,
  attention output, residuals) + 5·h (w1 and w3 outputs, sigmoid, SiLU, the
  product) + 5·H·L (scores, masked, guarded, softmax, zeroed: twin.py
  materialises each [H, L] row); then 2·V (logits, log-softmax) + 4·d.
  bf16 autocast stores most of these in 2 bytes instead of 4.
- FLOPs per token: 6·N_matmul (forward 2, backward 4 per weight used in a
  product; the token embedding and patch positions are lookups, not
  products) + 12·n_layers·L·d (q·k and attention·v over a context of L,
  forward and backward; twin.py computes the full L×L, masked).
"""

import twin

BYTES_STATE = 20
A100_BF16 = 312e12        # dense bf16 peak, FLOP/s
MFU = 0.3

SHAPES = [
    # name, d, layers, heads, max_seq_len, vocab
    ("tiny", 64, 2, 4, 128, 512),
    ("small", 128, 4, 4, 256, 2048),
    ("default", 256, 8, 8, 256, 4096),
    ("d512 × 12", 512, 12, 8, 256, 4096),
    ("d1024 × 24", 1024, 24, 16, 256, 4096),
    ("d2048 × 24", 2048, 24, 16, 256, 4096),
]


def config_for(d, layers, heads, L, V):
    h = ((8 * d + 2) // 3 + 31) // 32 * 32
    return {"vocab_size": V, "d_model": d, "n_layers": layers, "n_heads": heads,
            "mlp_hidden": h, "max_seq_len": L, "image_size": 32, "image_channels": 3,
            "patch_size": 4, "diffusion_steps": 1000, "schedule": "cosine",
            "rope_theta": 10000.0, "norm_eps": 1e-5, "bos_id": V - 7, "eos_id": V - 6,
            "boi_id": V - 5, "eoi_id": V - 4, "pad_id": V - 3, "user_id": V - 2,
            "assistant_id": V - 1}


def row(name, d, layers, heads, L, V):
    c = twin.validate_config(config_for(d, layers, heads, L, V))
    shapes = twin.param_shapes(c)
    n = sum(_numel(s) for _, s in shapes)
    lookups = sum(_numel(s) for k, s in shapes if k in ("tok_emb.weight", "patch_pos"))
    h = c["mlp_hidden"]
    act = 4 * (layers * (12 * d + 5 * h + 5 * heads * L) + 2 * V + 4 * d)
    flops = 6 * (n - lookups) + 12 * layers * L * d
    return {"name": name, "d": d, "layers": layers, "heads": heads, "L": L, "V": V,
            "params": n, "state": n * BYTES_STATE, "act": act, "flops": flops,
            "step_mem": n * BYTES_STATE + act * 8 * L,
            "gpu_tps": MFU * A100_BF16 / flops}


def _numel(shape):
    out = 1
    for s in shape:
        out *= s
    return out


def human(x, unit=""):
    for div, suffix in ((1e12, " T"), (1e9, " G"), (1e6, " M"), (1e3, " k")):
        if x >= div:
            return f"{x / div:.3g}{suffix}{unit}"
    return f"{x:.3g} {unit}".rstrip()


def main():
    print("| model | d | layers | heads | L | V | parameters | weights+grads+AdamW+EMA "
          "| activations / token (f32) | rank memory, 8 rows of L | FLOPs / token "
          f"| tokens/s at {MFU:.0%} of an A100 (bf16) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for shape in SHAPES:
        r = row(*shape)
        print(f"| {r['name']} | {r['d']} | {r['layers']} | {r['heads']} | {r['L']} | {r['V']} "
              f"| {human(r['params'])} | {human(r['state'], 'B')} | {human(r['act'], 'B')} "
              f"| {human(r['step_mem'], 'B')} | {human(r['flops'])} | {human(r['gpu_tps'])} |")


if __name__ == "__main__":
    main()
