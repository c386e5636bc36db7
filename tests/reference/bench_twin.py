#!/usr/bin/python3
"""bench_twin.py: the PyTorch side of `transfusion-cli bench` (issue 6, "The comparison").

    /usr/bin/python3 tests/reference/bench_twin.py [--preset tiny|small|default|large]
        [--threads N] [--repeat R] [--json] [--check] [--autocast-bf16]

Builds the twin (twin.py) at a preset's configuration, randomly initialised, in
float32, eager mode, and measures after warm-up (medians of R repetitions):

- train: forward + backward + zero_grad (no optimizer) of B rows of L = 128
  positions, each row two packed documents, no padding:
      A: [bos] 10 caption tokens [boi] image (64 patches, t uniform in 1..1000,
         diffusion loss) [eoi] [eos]                               78 positions
      B: [bos] 49 text tokens (a new document: own mask block, RoPE from 0)
                                                                   50 positions
  through the twin's own forward (its Layout and batch format), so the mask and
  the loss (LM mean + 5 · mean ε MSE) are exactly the twin's.
- image: one image of 50 DDPM steps with classifier-free guidance (w = 3) as a
  batch of two rows, [bos] 14 tokens [boi] and [bos] [boi]. The prefixes'
  keys/values are computed once (a per-layer KV cache); each step runs only
  the 64 image positions of both rows, attending to their cached prefix and
  the whole image block; then the twin's sampler_update. The twin's own
  forward is not used here: it has no cache. The cached model is written with
  the twin's layer functions (rmsnorm, rope, swiglu, patch_embedding, ...).
- text: prefill of a 64-token prompt (logits of the last position only), then
  greedy decode of 128 tokens one at a time with a preallocated KV cache,
  batch 1 (fewer when max_seq_len is smaller: tiny decodes 64).

Each part runs in its own subprocess, so peak_rss_mb (ru_maxrss) is that
part's own peak; it includes the Python + torch runtime, reported alone as
baseline_rss_mb (after import and building the model, before the part runs).
--autocast-bf16 runs every part under torch.autocast('cpu', dtype=torch.bfloat16)
(PyTorch's own mixed precision: matrix products in bf16 through oneDNN, which
runs AMX or AVX512-BF16 kernels where the CPU has them), the parameters staying
float32 (issue 15). --check compares the cached image and text paths with the twin's uncached
forward (max |Δ|, float32) and stops if they differ by more than 1e-4.
With --json, stdout is one JSON object (the keys of `transfusion-cli bench
--json`, plus extras); the human-readable lines go to stderr.
"""

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# name: d_model, n_layers, n_heads, max_seq_len, vocab_size, train batch rows
PRESETS = {
    "tiny": dict(d_model=64, n_layers=2, n_heads=4, max_seq_len=128, vocab_size=512, batch=8),
    "small": dict(d_model=128, n_layers=4, n_heads=4, max_seq_len=256, vocab_size=2048, batch=16),
    "default": dict(d_model=256, n_layers=8, n_heads=8, max_seq_len=256, vocab_size=4096, batch=16),
    "large": dict(d_model=256, n_layers=12, n_heads=8, max_seq_len=256, vocab_size=4096, batch=16),
}
PARTS = ("train", "image", "text")

SEQ_LEN = 128            # training row length
CAPTION = 10             # caption tokens of document A
DOC_B_TEXT = 49          # text tokens after [bos] in document B
LAMBDA = 5.0
PREFIX_TOKENS = 14       # image prompt tokens between [bos] and [boi]
IMAGE_STEPS = 50
CFG = 3.0
PROMPT_TOKENS = 64       # text prefill
DECODE_TOKENS = 128
CHECK_TOLERANCE = 1e-4


def default_mlp_hidden(d):
    """As tf_config_default_mlp_hidden: ceil(8/3 · d) rounded up to 32."""
    h = (8 * d + 2) // 3
    return (h + 31) // 32 * 32


def make_config(preset):
    p = PRESETS[preset]
    V = p["vocab_size"]
    specials = ("bos_id", "eos_id", "boi_id", "eoi_id", "pad_id", "user_id", "assistant_id")
    c = {
        "vocab_size": V, "d_model": p["d_model"], "n_layers": p["n_layers"],
        "n_heads": p["n_heads"], "mlp_hidden": default_mlp_hidden(p["d_model"]),
        "max_seq_len": p["max_seq_len"], "image_size": 32, "image_channels": 3,
        "patch_size": 4, "diffusion_steps": 1000, "schedule": "cosine",
        "rope_theta": 10000.0, "norm_eps": 1e-5,
    }
    for i, k in enumerate(specials):      # the last 7 ids
        c[k] = V - 7 + i
    return c


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # KiB on Linux


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---- The part runner (a subprocess) ----------------------------------------------------

def run_part_body(args):
    import numpy as np
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    sys.path.insert(0, HERE)
    import twin

    config = make_config(args.preset)
    model = twin.init_parameters(twin.Transfusion(config).float(), seed=1)
    c = model.config
    V, d, H = c["vocab_size"], c["d_model"], c["n_heads"]
    hd = d // H
    n_img = twin.n_patches(c)
    S, p, C = c["image_size"], c["patch_size"], c["image_channels"]
    alpha_bar = model.alpha_bar
    rng = np.random.default_rng(1234)
    R = args.repeat

    def ordinary(n):
        return [int(x) for x in rng.integers(0, V - 8, size=n)]   # ids 0 .. V−9

    baseline = rss_mb()

    # ---- the cached forward, written with the twin's layer functions ------------------
    def new_cache(B, n_slots):
        return [(torch.zeros(B, H, n_slots, hd), torch.zeros(B, H, n_slots, hd))
                for _ in range(c["n_layers"])]

    def forward_cached(x, pos, cache, n_past, mask):
        """x [B, n, d]: embeddings of n new positions whose RoPE positions are
        @pos [B, n] (numpy); their k/v go to cache slots n_past .. n_past+n−1 and
        they attend to slots 0 .. n_past+n−1 under @mask [B, n, n_past+n] (bool;
        None: all of them). Returns the residual stream after the last layer."""
        B, n, _ = x.shape
        cos, sin = twin.rope_tables(pos, hd, c["rope_theta"], x.dtype)
        end = n_past + n
        for layer, (K, Vc) in zip(model.layers, cache):
            a = layer.attn
            xn = twin.rmsnorm(x, layer.attn_norm.weight, c["norm_eps"])
            q = twin.rope(F.linear(xn, a.wq).view(B, n, H, hd), cos, sin).transpose(1, 2)
            K[:, :, n_past:end] = twin.rope(F.linear(xn, a.wk).view(B, n, H, hd), cos, sin).transpose(1, 2)
            Vc[:, :, n_past:end] = F.linear(xn, a.wv).view(B, n, H, hd).transpose(1, 2)
            scores = q @ K[:, :, :end].transpose(-1, -2) / math.sqrt(hd)     # [B, H, n, end]
            if mask is not None:
                scores = scores.masked_fill(~mask[:, None], float("-inf"))
            out = (torch.softmax(scores, dim=-1) @ Vc[:, :, :end]).transpose(1, 2).reshape(B, n, d)
            x = x + F.linear(out, a.wo)
            x = x + twin.swiglu(twin.rmsnorm(x, layer.mlp_norm.weight, c["norm_eps"]),
                                layer.mlp.w1, layer.mlp.w3, layer.mlp.w2)
        return x

    def final_norm(x):
        return twin.rmsnorm(x, model.norm.weight, c["norm_eps"])

    result = {}

    # ---- train ------------------------------------------------------------------------
    if args.part == "train":
        B = PRESETS[args.preset]["batch"]
        batch, images, ts = [], {}, []
        for b in range(B):
            t = int(rng.integers(1, c["diffusion_steps"] + 1))
            ts.append(t)
            batch.append([
                {"text": [c["bos_id"]] + ordinary(CAPTION) + [c["boi_id"]], "new_document": True},
                {"image": b, "t": t, "diffusion_loss": True, "new_document": False},
                {"text": [c["eoi_id"], c["eos_id"]], "new_document": False},
                {"text": [c["bos_id"]] + ordinary(DOC_B_TEXT), "new_document": True},
            ])
            images[b] = {"pixels": rng.uniform(-1, 1, size=(S, S, C)),
                         "noise": rng.standard_normal((S, S, C))}

        layout = twin.Layout(batch, c)
        assert (layout.B, layout.L) == (B, SEQ_LEN), (layout.B, layout.L)
        assert (layout.kind != twin.POS_PAD).all()
        n_a = 1 + CAPTION + 1 + n_img + 2
        if args.check:
            targets = int((layout.target >= 0).sum(1)[0])
            log(f"check train: rows {B} × {layout.L} positions, no padding; doc A 0..{n_a - 1} "
                f"(RoPE 0..{layout.pos[0, n_a - 1]}), doc B {n_a}..{SEQ_LEN - 1} "
                f"(RoPE {layout.pos[0, n_a]}..{layout.pos[0, -1]}); "
                f"{targets} LM targets per row; t = {ts}")

        def step():
            out = model(batch, images, lam=LAMBDA)
            out["loss"].backward()
            model.zero_grad(set_to_none=False)     # what optimizer.zero_grad() does in 1.13
            return out

        for _ in range(2):
            step()
        samples, fwd = [], []
        for _ in range(R):
            t0 = time.perf_counter()
            out = model(batch, images, lam=LAMBDA)
            t1 = time.perf_counter()
            out["loss"].backward()
            model.zero_grad(set_to_none=False)
            t2 = time.perf_counter()
            samples.append((t2 - t0) * 1e3)
            fwd.append((t1 - t0) * 1e3)
        ms = statistics.median(samples)
        result = {"batch": B, "seq_len": SEQ_LEN, "ms_per_step": ms,
                  "tokens_per_second": B * SEQ_LEN / (ms / 1e3),
                  "forward_ms": statistics.median(fwd),
                  "loss": float(out["loss"]), "samples_ms": samples}

    # ---- image ------------------------------------------------------------------------
    elif args.part == "image":
        cond = [c["bos_id"]] + ordinary(PREFIX_TOKENS) + [c["boi_id"]]
        uncond = [c["bos_id"], c["boi_id"]]
        P = len(cond)
        lens = [len(cond), len(uncond)]
        cache = new_cache(2, P + n_img)
        # Prefix mask: causal, only real keys (row 1 has 2 real positions, slots 2..P−1 unused).
        valid = torch.tensor([[j < n for j in range(P)] for n in lens])            # [2, P]
        causal = torch.ones(P, P, dtype=torch.bool).tril()
        prefix_mask = causal[None] & valid[:, None, :]
        # Image step mask: each image position sees its row's real prefix and the whole block.
        step_mask = torch.cat([valid[:, None, :].expand(2, n_img, P),
                               torch.ones(2, n_img, n_img, dtype=torch.bool)], dim=2)
        img_pos = np.stack([np.arange(n, n + n_img) for n in lens])                # RoPE
        prefix_ids = torch.tensor([cond, uncond + [c["pad_id"]] * (P - len(uncond))])
        prefix_pos = np.stack([np.arange(P)] * 2)
        timesteps = twin.sampler_timesteps(c["diffusion_steps"], IMAGE_STEPS)

        def prefill():
            forward_cached(model.tok_emb.weight[prefix_ids], prefix_pos, cache, 0, prefix_mask)

        def eps_both(x_t, t):
            temb = twin.time_embedding(twin.timestep_code(t, d, torch.float32),
                                       model.time_mlp["0"].weight, model.time_mlp["0"].bias,
                                       model.time_mlp["2"].weight, model.time_mlp["2"].bias)
            e = twin.patch_embedding(torch.tensor(x_t, dtype=torch.float32), model.patch_in.weight,
                                     model.patch_in.bias, model.patch_pos, temb, p)
            x = forward_cached(e[None].expand(2, n_img, d), img_pos, cache, P, step_mask)
            # float: under bf16 autocast the head's output is bf16, which the
            # sampler's float64 arithmetic (through numpy) does not take
            out = F.linear(final_norm(x), model.patch_out.weight, model.patch_out.bias).float()
            return twin.unpatchify(out[0], S, p, C), twin.unpatchify(out[1], S, p, C)

        def image(seed, step_times=None, n_steps=IMAGE_STEPS):
            g = np.random.default_rng(seed)
            x_t = g.standard_normal((S, S, C))
            prefill()
            for i, t in enumerate(timesteps[:n_steps]):
                t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else 0
                t0 = time.perf_counter()
                eps_c, eps_u = eps_both(x_t, t)
                eps = twin.guided_eps(eps_c, eps_u, CFG)
                z = g.standard_normal((S, S, C)) if t_prev > 0 else None
                _, x_t = twin.sampler_update("ddpm", alpha_bar, t, t_prev, x_t, eps, z)
                if step_times is not None:
                    step_times.append((time.perf_counter() - t0) * 1e3)
            return x_t

        with torch.inference_mode():
            if args.check:
                prefill()
                g = np.random.default_rng(7)
                worst = 0.0
                for t in (1000, 600, 20):
                    x_t = g.standard_normal((S, S, C)).astype(np.float32)
                    eps_c, eps_u = eps_both(x_t, t)
                    ref_c = twin.predict_block(model, cond, x_t, t)
                    ref_u = twin.predict_block(model, uncond, x_t, t)
                    worst = max(worst, float((eps_c - ref_c).abs().max()),
                                float((eps_u - ref_u).abs().max()))
                scale = float(ref_c.abs().max())
                log(f"check image: cached ε̂ (cond and uncond rows, t 1000/600/20) vs the twin's "
                    f"uncached forward: max |Δ| = {worst:.3g} (max |ε̂| {scale:.3g})")
                if not worst <= CHECK_TOLERANCE:
                    sys.exit("bench_twin: image check failed")

            image(99)                                   # warm-up: one whole image
            step_times, totals, prefills = [], [], []
            for r in range(R):
                t0 = time.perf_counter()
                prefill()
                t1 = time.perf_counter()
                image(100 + r, step_times)
                totals.append(time.perf_counter() - t0)
                prefills.append((t1 - t0) * 1e3)
        result = {"prefix_tokens": P, "steps": IMAGE_STEPS,
                  "ms_per_step": statistics.median(step_times),
                  "seconds_per_image": statistics.median(totals),
                  "prefix_ms": statistics.median(prefills), "cfg": CFG, "batch": 2,
                  "step_ms_min": min(step_times), "step_ms_max": max(step_times),
                  "samples_seconds_per_image": totals}

    # ---- text -------------------------------------------------------------------------
    elif args.part == "text":
        n_prompt = PROMPT_TOKENS
        n_decode = min(DECODE_TOKENS, c["max_seq_len"] - n_prompt)
        prompt = [c["bos_id"]] + ordinary(n_prompt - 1)
        cache = new_cache(1, n_prompt + n_decode)
        causal = torch.ones(n_prompt, n_prompt, dtype=torch.bool).tril()[None]
        prompt_ids = torch.tensor([prompt])
        prompt_pos = np.arange(n_prompt)[None]

        def prefill():
            x = forward_cached(model.tok_emb.weight[prompt_ids], prompt_pos, cache, 0, causal)
            return F.linear(final_norm(x[:, -1:]), model.lm_head.weight)      # [1, 1, V]

        def decode(first_logits, n, keep=None):
            tok = int(first_logits[0, -1].argmax())
            fed = []
            for i in range(n):
                fed.append(tok)
                x = forward_cached(model.tok_emb.weight[torch.tensor([[tok]])],
                                   np.array([[n_prompt + i]]), cache, n_prompt + i, None)
                logits = F.linear(final_norm(x), model.lm_head.weight)
                if keep is not None:
                    keep.append(logits[0, 0].clone())
                tok = int(logits[0, 0].argmax())
            return fed

        with torch.inference_mode():
            if args.check:
                first = prefill()
                kept = []
                fed = decode(first, n_decode, kept)
                ref = model([[{"text": prompt + fed, "new_document": True}]], {})["logits"][0]
                cached = torch.cat([first[0], torch.stack(kept)])                 # positions 63..
                worst = float((cached - ref[n_prompt - 1:]).abs().max())
                same = all(int(ref[n_prompt - 1 + i].argmax()) == fed[i] for i in range(n_decode))
                log(f"check text: cached prefill + {n_decode} decode steps vs the twin's uncached "
                    f"forward over the {n_prompt + n_decode}-token sequence: logits max |Δ| = "
                    f"{worst:.3g} (max |logit| {float(ref.abs().max()):.3g}); greedy tokens "
                    f"{'agree' if same else 'DIFFER'}")
                if not worst <= CHECK_TOLERANCE:
                    sys.exit("bench_twin: text check failed")

            decode(prefill(), min(16, n_decode))          # warm-up
            decode(prefill(), n_decode)
            pre, dec = [], []
            for _ in range(R):
                t0 = time.perf_counter()
                first = prefill()
                t1 = time.perf_counter()
                decode(first, n_decode)
                t2 = time.perf_counter()
                pre.append(t1 - t0)
                dec.append(t2 - t1)
        result = {"prompt_tokens": n_prompt, "decode_tokens": n_decode,
                  "prefill_tokens_per_second": n_prompt / statistics.median(pre),
                  "decode_tokens_per_second": n_decode / statistics.median(dec),
                  "samples_prefill_ms": [s * 1e3 for s in pre],
                  "samples_decode_ms": [s * 1e3 for s in dec]}

    result["peak_rss_mb"] = rss_mb()
    result["baseline_rss_mb"] = baseline
    result["torch_threads"] = torch.get_num_threads()
    result["torch_version"] = torch.__version__
    print(json.dumps(result))


def run_part(args):
    import contextlib
    import torch
    context = (torch.autocast("cpu", dtype=torch.bfloat16) if args.autocast_bf16
               else contextlib.nullcontext())
    with context:
        run_part_body(args)


# ---- The driver -------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description="Benchmark the PyTorch twin like `transfusion-cli bench`.")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="default")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    ap.add_argument("--repeat", type=int, default=5, help="repetitions, the median is reported (default 5)")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--check", action="store_true",
                    help="check the cached image/text paths against the twin's uncached forward")
    ap.add_argument("--autocast-bf16", action="store_true",
                    help="run under torch.autocast('cpu', dtype=torch.bfloat16)")
    ap.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)   # internal: one part
    args = ap.parse_args()
    if args.threads < 1 or args.repeat < 1:
        ap.error("--threads and --repeat must be >= 1")
    if args.part:
        run_part(args)
        return

    results = {}
    for part in PARTS:
        cmd = [sys.executable, os.path.abspath(__file__), "--part", part, "--preset", args.preset,
               "--threads", str(args.threads), "--repeat", str(args.repeat)]
        if args.check:
            cmd.append("--check")
        if args.autocast_bf16:
            cmd.append("--autocast-bf16")
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            sys.exit(f"bench_twin: part '{part}' failed (exit {proc.returncode})")
        results[part] = json.loads(proc.stdout.strip().splitlines()[-1])

    env = {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS") if k in os.environ}
    out = {"preset": args.preset, "threads": args.threads, "repeat": args.repeat,
           "autocast": "bf16" if args.autocast_bf16 else None,
           "implementation": "pytorch-twin", "torch_version": results["train"]["torch_version"],
           "torch_threads": results["train"]["torch_threads"],
           "env": env, "rss": "ru_maxrss of each part's own subprocess (includes Python + torch)"}
    out.update(results)
    for r in results.values():
        r.pop("torch_threads", None)
        r.pop("torch_version", None)
    if args.json:
        print(json.dumps(out))
        return

    tr, im, tx = results["train"], results["image"], results["text"]
    print(f"PyTorch twin {out['torch_version']}, preset {args.preset}, torch threads {args.threads}, "
          f"OPENBLAS_NUM_THREADS {env.get('OPENBLAS_NUM_THREADS', 'unset')}, "
          f"OMP_NUM_THREADS {env.get('OMP_NUM_THREADS', 'unset')}; medians of {args.repeat}")
    print(f"train  {tr['batch']} × {tr['seq_len']}: {tr['ms_per_step']:.1f} ms/step "
          f"(forward {tr['forward_ms']:.1f}), {tr['tokens_per_second']:.0f} tokens/s, "
          f"peak RSS {tr['peak_rss_mb']:.0f} MB")
    print(f"image  CFG×2, prefix {im['prefix_tokens']}, {im['steps']} steps: "
          f"{im['ms_per_step']:.2f} ms/step, {im['seconds_per_image']:.2f} s/image "
          f"(prefix {im['prefix_ms']:.1f} ms), peak RSS {im['peak_rss_mb']:.0f} MB")
    print(f"text   prefill {tx['prompt_tokens']}: {tx['prefill_tokens_per_second']:.0f} tokens/s, "
          f"decode {tx['decode_tokens']}: {tx['decode_tokens_per_second']:.1f} tokens/s, "
          f"peak RSS {tx['peak_rss_mb']:.0f} MB")
    print(f"(baseline RSS after import + model: {tr['baseline_rss_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
