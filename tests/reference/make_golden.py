"""make_golden.py: writes the golden files the C tests compare against.

    /usr/bin/python3 tests/reference/make_golden.py [OUTPUT_DIR]

OUTPUT_DIR defaults to tests/golden/. Writes
  tiny-model.safetensors  the tiny model's weights (F32; these are THE weights)
  tiny-batch.safetensors  a batch, its images, and the twin's outputs, losses
                          and gradients, computed in float64 from the F32 weights
                          and images, stored as F32
  tiny-model-V.safetensors, tiny-batch-V.safetensors
                          the same weights and batch under each image-side
                          recipe V of VARIANTS (issue 14)
The output is deterministic: the same bytes on every run.
"""

import json
import os
import sys

import numpy as np
import torch

import twin
from safetensors_io import write_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(os.path.dirname(HERE), "golden")

TINY_CONFIG = {
    "vocab_size": 64, "d_model": 32, "n_layers": 2, "n_heads": 4, "mlp_hidden": 96,
    "max_seq_len": 64, "image_size": 32, "image_channels": 3, "patch_size": 8,
    "diffusion_steps": 1000, "schedule": "cosine", "rope_theta": 10000.0, "norm_eps": 1e-5,
    "bos_id": 57, "eos_id": 58, "boi_id": 59, "eoi_id": 60, "pad_id": 61,
    "user_id": 62, "assistant_id": 63,
}
LAMBDA = 5
# Recipes of the image side, each golden with the same weights and batch:
# the v target with Min-SNR-γ weights, and the x0 target with them.
VARIANTS = {
    "v": {"prediction": "v", "min_snr_gamma": 5.0, "t_sampling": "logit_normal",
          "t_mean": -0.5, "t_scale": 1.25},
    "x": {"prediction": "x", "min_snr_gamma": 3.0},
    "adaln": {"prediction": "v", "time_conditioning": "adaln_zero"},
    # the U-Net patch encoder and decoder: 3 levels (patch 8), 2 blocks each
    "unet": {"prediction": "v", "image_encoder": "unet", "unet_channels": 6, "unet_blocks": 2},
    # the same without the skips: the decoder draws only what the transformer gives
    "unet-noskip": {"prediction": "v", "image_encoder": "unet", "unet_channels": 6,
                    "unet_blocks": 2, "unet_skips": False},
    # linear patches between 3×3 convolutions of 5 channels at full resolution
    "conv": {"prediction": "v", "image_encoder": "conv", "conv_channels": 5},
    # axial RoPE: patches turn by their grid row (even pairs) and column (odd)
    "axial": {"prediction": "v", "image_rope": "axial"},
}
WEIGHT_SEED = 20240611
DATA_SEED = 7


def make_model():
    """Random init, then norms 1 + 0.1·randn and biases 0.02·randn so that
    every gradient path is exercised."""
    model = twin.init_parameters(twin.Transfusion(TINY_CONFIG), seed=WEIGHT_SEED)
    gen = torch.Generator().manual_seed(WEIGHT_SEED + 1)
    with torch.no_grad():
        for name, p in model.ordered_parameters():
            if twin.is_norm(name):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif twin.is_bias(name):
                p.copy_(0.02 * torch.randn(p.shape, generator=gen))
    return model


def make_variant_model(config):
    """The golden weights (make_model's) under another recipe's config; the
    tensors only it has (adaLN, U-Net, conv encoder) are random, not zero (norms near 1),
    so that every gradient path is exercised."""
    base = dict(make_model().ordered_parameters())
    model = twin.Transfusion(config)
    gen = torch.Generator().manual_seed(WEIGHT_SEED + 2)
    with torch.no_grad():
        for name, p in model.ordered_parameters():
            if name in base:
                p.copy_(base[name])
            elif twin.is_norm(name):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
    return model


def make_batch():
    """The batch (segment JSON) and its images (F32 pixels and noise)."""
    c = TINY_CONFIG
    rng = np.random.default_rng(DATA_SEED)
    bos, eos, boi, eoi = c["bos_id"], c["eos_id"], c["boi_id"], c["eoi_id"]

    def words(n):
        return [int(i) for i in rng.integers(0, 57, size=n)]

    def text(ids, new_document=False):
        return {"text": ids, "new_document": new_document}

    def image(index, t, diffusion_loss, new_document=False):
        return {"image": index, "t": t, "diffusion_loss": diffusion_loss,
                "new_document": new_document}

    batch = [
        [text([bos] + words(5) + [boi], True), image(0, 317, True), text([eoi, eos]),
         text([bos] + words(3) + [boi], True), image(1, 0, False), text([eoi] + words(4) + [eos])],
        [text([bos, boi], True), image(2, 123, True), text([eoi] + words(6) + [eos]),
         text([boi]), image(3, 999, True), text([eoi, eos])],
        [text([bos] + words(20) + [eos], True)],
    ]

    S, C = c["image_size"], c["image_channels"]
    images = {}
    for index in range(4):
        # Smooth blobs plus a little grain, clipped to [-1, 1]: image-like, not flat.
        yy, xx = np.mgrid[0:S, 0:S] / (S - 1)
        pixels = np.zeros((S, S, C))
        for ch in range(C):
            fy, fx, phase = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), rng.uniform(0, 2 * np.pi)
            pixels[:, :, ch] = np.sin(2 * np.pi * (fy * yy + fx * xx) + phase)
        pixels = np.clip(0.8 * pixels + 0.2 * rng.uniform(-1, 1, size=(S, S, C)), -1, 1)
        noise = rng.standard_normal((S, S, C))
        images[index] = {"pixels": pixels.astype(np.float32), "noise": noise.astype(np.float32)}
    return batch, images


def write_batch_file(model_path, batch_path, batch, images, lam=LAMBDA):
    """Runs the checkpoint @model_path in float64 on @batch (twin format) and
    writes @batch_path: the inputs, the outputs, losses and every gradient, as
    the C golden test (tests/test-golden.c) reads them. Returns (out, layout)."""
    # The reference is computed in float64 from exactly the stored F32 values.
    model64, config, _ = twin.load_checkpoint(model_path, dtype=torch.float64)
    out = model64(batch, images, lam=lam)
    model64.zero_grad()
    out["loss"].backward()

    layout = out["layout"]
    tensors = []
    for index in sorted(images):
        tensors.append((f"image.{index}.pixels", np.asarray(images[index]["pixels"], np.float32), "F32"))
        tensors.append((f"image.{index}.noise", np.asarray(images[index]["noise"], np.float32), "F32"))
    for index in sorted(images):
        tensors.append((f"x_t.{index}", f32(out["x_t"][index]), "F32"))
    for index in sorted(images):
        tensors.append((f"pred.{index}", f32(out["pred"][index]), "F32"))
    tensors.append(("logits", f32(out["logits"]), "F32"))
    for key in ("loss", "lm", "ddpm"):
        tensors.append((key, f32(out[key]).reshape(1), "F32"))
    for name, p in model64.ordered_parameters():
        tensors.append((f"grad.{name}", f32(p.grad), "F32"))
    # Debugging aids: the layout the twin derived, its schedule, its hidden states.
    for key in ("kind", "doc", "pos", "image", "patch", "target"):
        tensors.append((f"layout.{key}", getattr(layout, key).astype(np.int32), "I32"))
    if config["image_rope"] != "1d":
        tensors.append(("layout.pos_col", layout.pos_col.astype(np.int32), "I32"))
    tensors.append(("schedule.alpha_bar", model64.alpha_bar, "F64"))
    tensors.append(("hidden.embed", f32(out["hidden"][0]), "F32"))
    for i in range(config["n_layers"]):
        tensors.append((f"hidden.layers.{i}", f32(out["hidden"][i + 1]), "F32"))

    metadata = {
        "batch": json.dumps(batch, separators=(",", ":")),
        "lambda": str(lam),
        "model": os.path.basename(model_path),
        "n_text_targets": str(out["n_text_targets"]),
        "n_images": str(out["n_images"]),
        "seq_len": str(layout.L),
        # The float64 values, for reading without rounding.
        "loss_f64": repr(float(out["loss"])),
        "lm_f64": repr(float(out["lm"])),
        "ddpm_f64": repr(float(out["ddpm"])),
        "provenance": "tests/reference/make_golden.py (float64 twin, stored as F32)",
    }
    write_safetensors(batch_path, tensors, metadata)

    return out, layout


def f32(t):
    return t.detach().cpu().numpy().astype(np.float32)


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)  # a fixed summation order, so the bytes are reproducible

    model_path = os.path.join(out_dir, "tiny-model.safetensors")
    batch_path = os.path.join(out_dir, "tiny-batch.safetensors")

    model = make_model()
    twin.save_checkpoint(model, TINY_CONFIG, model_path,
                         {"provenance": "tests/reference/make_golden.py (tiny golden model)"})

    out, layout = write_batch_file(model_path, batch_path, *make_batch(), lam=LAMBDA)
    for name, recipe in VARIANTS.items():
        config = {**TINY_CONFIG, **recipe}
        variant_model = os.path.join(out_dir, f"tiny-model-{name}.safetensors")
        variant_batch = os.path.join(out_dir, f"tiny-batch-{name}.safetensors")
        twin.save_checkpoint(make_variant_model(config), config, variant_model,
                             {"provenance": f"tests/reference/make_golden.py (tiny golden model, {name})"})
        v_out, _ = write_batch_file(variant_model, variant_batch, *make_batch(), lam=LAMBDA)
        print(f"wrote {variant_model}, {variant_batch}: loss={float(v_out['loss']):.17g}")

    print(f"wrote {model_path} ({os.path.getsize(model_path)} bytes)")
    print(f"wrote {batch_path} ({os.path.getsize(batch_path)} bytes)")
    print(f"B={layout.B} L={layout.L} text targets={out['n_text_targets']} "
          f"diffusion images={out['n_images']}")
    print(f"loss={float(out['loss']):.17g} lm={float(out['lm']):.17g} "
          f"ddpm={float(out['ddpm']):.17g}")


if __name__ == "__main__":
    main()
