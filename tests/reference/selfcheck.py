"""selfcheck.py: checks the twin and the golden files against themselves.

    /usr/bin/python3 tests/reference/selfcheck.py

- the safetensors reader/writer round-trips every dtype and rejects broken files;
- make_golden.py is deterministic (regenerates the same bytes) and the
  committed golden files match what it writes;
- the stored outputs match a fresh float64 run;
- autograd gradients match central finite differences in float64 on random
  elements of every parameter;
- float32 and float64 losses agree to ~1e-5 relative;
- the layout conventions (mask, LM targets, RoPE positions, patch order,
  documents, padding) hold as the README states, and axial RoPE's rows and
  columns;
- make_golden_sampling.py regenerates tiny-sampling.safetensors byte for byte,
  and its checks pass (stored values, float32 vs float64, the sampler
  conventions against the Gaussian posterior, t_prev = 0 gives x0).
Exits non-zero on the first failure.
"""

import json
import math
import os
import struct
import sys
import tempfile

import numpy as np
import torch

import make_golden
import make_golden_sampling
import twin
from safetensors_io import parse_safetensors, read_safetensors, write_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(os.path.dirname(HERE), "golden")
MODEL = os.path.join(GOLDEN, "tiny-model.safetensors")
BATCH = os.path.join(GOLDEN, "tiny-batch.safetensors")
SAMPLING = os.path.join(GOLDEN, "tiny-sampling.safetensors")

n_checks = 0


def check(cond, message):
    global n_checks
    n_checks += 1
    if not cond:
        print(f"FAIL: {message}")
        sys.exit(1)


def close(a, b, atol, rtol):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return bool(np.all(np.abs(a - b) <= atol + rtol * np.abs(b)))


def check_safetensors_io():
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.safetensors")
        x = rng.standard_normal((3, 5)).astype(np.float32)
        tensors = [("f32", x, "F32"), ("f64", x.astype(np.float64), "F64"),
                   ("f16", x, "F16"), ("bf16", x, "BF16"),
                   ("i32", np.arange(7, dtype=np.int32)), ("scalar", np.float32(2.5)),
                   ("empty", np.zeros((0, 4), np.float32))]
        write_safetensors(path, tensors, {"k": "v"})
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            blob = f.read()
        (n,) = struct.unpack("<Q", blob[:8])
        check((8 + n) % 8 == 0, "header padded to a multiple of 8")
        got, meta = read_safetensors(path)
        check(meta == {"k": "v"}, "metadata round trip")
        check(list(got) == [t[0] for t in tensors], "tensors in the order written")
        check(np.array_equal(got["f32"], x) and np.array_equal(got["f64"], x), "F32/F64 exact")
        check(close(got["f16"], x, 1e-3, 1e-3), "F16 round trip")
        check(close(got["bf16"], x, 0, 2 ** -8), "BF16 round trip")
        check(got["scalar"].shape == () and got["scalar"] == 2.5, "scalar")
        check(got["empty"].shape == (0, 4), "empty tensor")
        # BF16 rounding is to nearest even.
        from safetensors_io import f32_to_bf16
        v = np.array([1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, float("nan"), -0.0], np.float32)
        bits = f32_to_bf16(v)
        check(bits[0] == 0x3F80 and bits[1] == 0x3F82 and (bits[2] & 0x7F80) == 0x7F80
              and bits[2] & 0x7F and bits[3] == 0x8000, "BF16 round to nearest even")

        def rejects(b, needle):
            try:
                parse_safetensors(b, "bad")
            except ValueError as e:
                check(needle in str(e), f"message '{e}' mentions '{needle}'")
                return
            check(False, f"broken file accepted ({needle})")

        header = json.loads(blob[8:8 + n])
        def rebuild(h, data=blob[8 + n:]):
            text = json.dumps(h).encode()
            return struct.pack("<Q", len(text)) + text + data
        rejects(blob[:5], "shorter")
        rejects(blob[:size - 1], "data section")
        rejects(blob + b"\0", "data section")
        h = json.loads(json.dumps(header)); h["f32"]["shape"] = [3, 4]
        rejects(rebuild(h), "tensor 'f32'")
        h = json.loads(json.dumps(header)); h["f32"]["dtype"] = "F8"
        rejects(rebuild(h), "dtype")
        h = json.loads(json.dumps(header)); h["f64"]["data_offsets"][0] += 4; h["f64"]["data_offsets"][1] += 4
        rejects(rebuild(h), "tensor")
        rejects(struct.pack("<Q", 2 ** 40) + b"{}", "exceeds")
        rejects(struct.pack("<Q", 3) + b"{x}", "JSON")


def check_determinism():
    with tempfile.TemporaryDirectory() as tmp:
        argv = sys.argv
        sys.argv = ["make_golden.py", tmp]
        try:
            make_golden.main()
        finally:
            sys.argv = argv
        for name in ("tiny-model.safetensors", "tiny-batch.safetensors"):
            with open(os.path.join(tmp, name), "rb") as a, open(os.path.join(GOLDEN, name), "rb") as b:
                check(a.read() == b.read(), f"{name}: regenerated bytes differ from tests/golden/")


def check_sampling():
    with tempfile.TemporaryDirectory() as tmp:
        with open(MODEL, "rb") as f, open(os.path.join(tmp, "tiny-model.safetensors"), "wb") as g:
            g.write(f.read())
        argv = sys.argv
        sys.argv = ["make_golden_sampling.py", tmp]
        try:
            count = make_golden_sampling.main()   # writes, then runs its own checks
        finally:
            sys.argv = argv
        with open(os.path.join(tmp, "tiny-sampling.safetensors"), "rb") as a, open(SAMPLING, "rb") as b:
            check(a.read() == b.read(), "tiny-sampling.safetensors: regenerated bytes differ from tests/golden/")
    global n_checks
    n_checks += count   # (same bytes, so those checks hold for the committed file too)


def run(model, batch, images, lam):
    out = model(batch, images, lam=lam)
    return out


def check_against_stored(model64, batch, images, lam, stored):
    out = run(model64, batch, images, lam)
    model64.zero_grad()
    out["loss"].backward()
    for key in ("loss", "lm", "ddpm"):
        check(close(out[key].item(), stored[key][0], 1e-7, 1e-6), f"stored {key}")
    check(close(out["logits"].detach(), stored["logits"], 1e-6, 1e-6), "stored logits")
    for i in images:
        check(close(out["pred"][i].detach(), stored[f"pred.{i}"], 1e-6, 1e-6), f"pred.{i}")
        check(close(out["x_t"][i], stored[f"x_t.{i}"], 1e-6, 1e-6), f"x_t.{i}")
    for name, p in model64.ordered_parameters():
        check(close(p.grad, stored[f"grad.{name}"], 1e-7, 1e-5), f"grad.{name}")
        check(bool(torch.all(p.grad.abs().sum() > 0)), f"grad.{name} is not all zero")
    return out


def check_finite_differences(model64, batch, images, lam, n_random=3, h=1e-4):
    """Autograd vs central differences in float64 on the largest-gradient
    element and @n_random random elements of every tensor. (h = 1e-4 balances
    truncation against float64 rounding of the loss, ~1e-14.)"""
    model64.zero_grad()
    run(model64, batch, images, lam)["loss"].backward()
    rng = np.random.default_rng(1)
    worst = 0.0
    for name, p in model64.ordered_parameters():
        flat = p.data.view(-1)
        grad = p.grad.view(-1)
        picks = [int(grad.abs().argmax())]
        picks += [int(i) for i in rng.choice(flat.numel(), size=min(n_random, flat.numel()), replace=False)]
        for idx in picks:
            old = flat[idx].item()
            with torch.no_grad():
                flat[idx] = old + h
                up = run(model64, batch, images, lam)["loss"].item()
                flat[idx] = old - h
                down = run(model64, batch, images, lam)["loss"].item()
                flat[idx] = old
            fd = (up - down) / (2 * h)
            ag = grad[idx].item()
            err = abs(fd - ag)
            worst = max(worst, err / (1e-8 + abs(ag)))
            check(err <= 1e-8 + 1e-5 * abs(ag),
                  f"{name}[{idx}]: autograd {ag:.12g} vs finite difference {fd:.12g}")
    print(f"  finite differences: worst relative error {worst:.2e}")


def check_precision(batch, images, lam, out64):
    model32, _, _ = twin.load_checkpoint(MODEL, dtype=torch.float32)
    out32 = run(model32, batch, images, lam)
    for key in ("loss", "lm", "ddpm"):
        a, b = out32[key].item(), out64[key].item()
        print(f"  {key}: float32 {a:.9g} float64 {b:.12g} rel {abs(a - b) / abs(b):.1e}")
        check(abs(a - b) <= 1e-5 * abs(b), f"float32 vs float64 {key}")
    check(close(out32["logits"].detach(), out64["logits"].detach(), 1e-5, 1e-4), "float32 logits")


def check_layout(model64, batch, images, lam, stored):
    c = model64.config
    layout = twin.Layout(batch, c)
    for key in ("kind", "doc", "pos", "image", "patch", "target"):
        check(np.array_equal(getattr(layout, key), stored[f"layout.{key}"]), f"layout.{key}")
    mask = layout.attention_mask()
    boi, eoi, eos, bos = c["boi_id"], c["eoi_id"], c["eos_id"], c["bos_id"]
    n = twin.n_patches(c)
    # Row 0: doc A = positions 0..24 (boi at 6, image 0 at 7..22, eoi 23, eos 24),
    # doc B from 25 (boi at 29, image 1 at 30..45, eoi 46).
    check(layout.token[0, 6] == boi and layout.kind[0, 7] == twin.POS_PATCH, "row 0 image 0 start")
    check(layout.pos[0, 25] == 0 and layout.doc[0, 25] == 1, "RoPE restarts at a new document")
    check(layout.pos[0, 30] == 5 and layout.pos[0, 45] == 20, "patch positions consecutive")
    check(mask[0, 7, 22] and mask[0, 22, 7], "patches of one image see each other")
    check(mask[0, 7, 6] and not mask[0, 6, 7], "boi does not see its image")
    check(mask[0, 23, 22] and mask[0, 23, 0], "eoi sees the image and the prefix")
    check(not mask[0, 25, 24] and not mask[0, 30, 7], "documents do not see each other")
    check(mask[0, 30, 45] and not mask[0, 30, 46], "patches do not see text after the image")
    check(layout.target[0, 5] == boi and layout.target[0, 6] == -1, "text before boi predicts boi; boi predicts nothing")
    check(layout.target[0, 22] == -1 and layout.target[0, 23] == eos, "patches no target; eoi predicts next")
    check(layout.target[0, 24] == -1 and layout.token[0, 25] == bos, "no target across documents")
    check(not mask[2, 22].any() and not mask[2, :, 22].any(), "padding sees and is seen by nothing")
    check(layout.target[1, 25] == boi, "eos followed by boi in the same document is a target")

    out = run(model64, batch, images, lam)
    check(float(out["logits"][2, 22:].abs().max()) == 0.0, "logits are zero at padding")
    check(all(torch.isfinite(h).all() for h in out["hidden"]), "no NaN at padding")

    # Packing: doc B of row 0 and row 2 alone give the same outputs as in the batch.
    alone = run(model64, [batch[0][3:], batch[2]], images, lam)
    check(close(alone["logits"][0, :27].detach(), out["logits"][0, 25:52].detach(), 1e-10, 1e-9),
          "a packed document computes as if alone")
    check(close(alone["logits"][1, :22].detach(), out["logits"][2, :22].detach(), 1e-10, 1e-9),
          "padding does not change a row")
    check(close(alone["pred"][1].detach(), out["pred"][1].detach(), 1e-10, 1e-9),
          "a packed image computes as if alone")


def check_axial_layout(batch):
    """image_rope axial: patch k of an image from index b has b + k // side and
    b + k % side; text and what follows the image keep document indices."""
    c = twin.validate_config({**make_golden.TINY_CONFIG, "image_rope": "axial"})
    layout, plain = twin.Layout(batch, c), twin.Layout(batch, twin.validate_config(make_golden.TINY_CONFIG))
    side = twin.patches_per_side(c)
    k = np.arange(twin.n_patches(c))
    # row 0: image 0 at 7..22 (document index 7), image 1 at 30..45 (index 5 of doc B)
    check(np.array_equal(layout.pos[0, 7:23], 7 + k // side) and
          np.array_equal(layout.pos_col[0, 7:23], 7 + k % side), "axial: image 0's rows and columns")
    check(np.array_equal(layout.pos[0, 30:46], 5 + k // side) and
          np.array_equal(layout.pos_col[0, 30:46], 5 + k % side), "axial: image 1's, from its document")
    text = layout.kind != twin.POS_PATCH
    check(np.array_equal(layout.pos[text], plain.pos[text]) and
          np.array_equal(layout.pos_col[text], plain.pos[text]), "axial: text keeps document indices")
    check(np.array_equal(plain.pos_col, plain.pos), "1d: both positions are the document index")


def check_conventions():
    c = make_golden.TINY_CONFIG
    p, C, S = c["patch_size"], c["image_channels"], c["image_size"]
    img = torch.arange(S * S * C, dtype=torch.float64).reshape(S, S, C)
    patches = twin.patchify(img, p)
    P = S // p
    pr, pc, dy, dx, ch = 2, 3, 5, 1, 2
    check(patches[pr * P + pc, (dy * p + dx) * C + ch] == img[pr * p + dy, pc * p + dx, ch], "patchify index")
    check(torch.equal(twin.unpatchify(patches, S, p, C), img), "unpatchify inverts patchify")

    ab = twin.cosine_alpha_bar(1000)
    check(ab[0] == 1.0 and np.all(np.diff(ab) < 0) and 0 < ab[1000] < 1e-4, "alpha_bar shape")
    f = lambda t: math.cos(((t / 1000 + 0.008) / 1.008) * math.pi / 2) ** 2
    check(abs(ab[500] - f(500) / f(0)) < 1e-12, "alpha_bar(t) = f(t)/f(0) where unclipped")

    # RoPE: interleaved pairs, angle pos·theta^(−2j/hd).
    hd, theta = 8, 10000.0
    x = torch.randn(1, 1, 1, hd, dtype=torch.float64)
    cos, sin = twin.rope_tables(np.array([[7]]), hd, theta, torch.float64)
    y = twin.rope(x, cos, sin)
    j = 2
    ang = 7 * theta ** (-2 * j / hd)
    a, b = x[0, 0, 0, 2 * j].item(), x[0, 0, 0, 2 * j + 1].item()
    check(abs(y[0, 0, 0, 2 * j].item() - (a * math.cos(ang) - b * math.sin(ang))) < 1e-14
          and abs(y[0, 0, 0, 2 * j + 1].item() - (a * math.sin(ang) + b * math.cos(ang))) < 1e-14,
          "RoPE interleaved pairs")
    # Axial RoPE: even pairs by the first position, odd pairs by the second.
    cos2, sin2 = twin.rope_tables(np.array([[7]]), hd, theta, torch.float64, np.array([[3]]))
    check(torch.equal(cos2[..., 0::2], cos[..., 0::2]) and torch.equal(sin2[..., 0::2], sin[..., 0::2]),
          "axial RoPE: even pairs turn by the row position")
    cos3, sin3 = twin.rope_tables(np.array([[3]]), hd, theta, torch.float64)
    check(torch.equal(cos2[..., 1::2], cos3[..., 1::2]) and torch.equal(sin2[..., 1::2], sin3[..., 1::2]),
          "axial RoPE: odd pairs turn by the column position")

    code = twin.timestep_code(3, 8, torch.float64)
    check(abs(code[1].item() - math.cos(3 * math.exp(-math.log(10000) / 4))) < 1e-15
          and abs(code[5].item() - math.sin(3 * math.exp(-math.log(10000) / 4))) < 1e-15,
          "timestep code [cos, sin]")


def main():
    torch.set_num_threads(1)
    print("safetensors_io"); check_safetensors_io()
    print("conventions"); check_conventions()
    print("determinism"); check_determinism()
    model64, config, meta = twin.load_checkpoint(MODEL, dtype=torch.float64)
    batch, images, lam, stored, bmeta = twin.load_batch(BATCH)
    check(lam == 5.0, "lambda")
    print("stored outputs"); out64 = check_against_stored(model64, batch, images, lam, stored)
    print("layout"); check_layout(model64, batch, images, lam, stored)
    print("axial layout"); check_axial_layout(batch)
    print("precision"); check_precision(batch, images, lam, out64)
    print("finite differences"); check_finite_differences(model64, batch, images, lam)
    print("sampling"); check_sampling()
    print(f"selfcheck: {n_checks} checks passed")


if __name__ == "__main__":
    main()
