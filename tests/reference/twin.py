"""twin.py: the PyTorch twin of the C Transfusion engine (SPEC §2, §3, §6).

The same math as engine/, written one function per layer so that a reader can
check each against SPEC.md. Works in float32 and float64 (the module's dtype).
Angles (RoPE, timestep code) and the noise schedule and image noising are
computed in float64 and then rounded to the module dtype.

Batch format (a list of rows; each row a list of segments):
    {"text": [ids], "new_document": bool}
    {"image": index, "t": int, "diffusion_loss": bool, "new_document": bool}
    {"image": index, "t": int, "noised": true}   (sampling: "pixels" ARE x_t)
`images` maps each image index to {"pixels": [H,W,C], "noise": [H,W,C]}
(channels-last, pixels in [-1, 1], noise standard normal). A "noised" image
is used as given as x_t at level t (no noising, "noise" unused, no diffusion
loss); it is how a sampler asks for ε̂ (see predict_block).

Sampling (SPEC §4): sampler_timesteps, predict_block, guided_eps,
sampler_update (float64).
"""

import json
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from safetensors_io import read_safetensors, write_safetensors

FORMAT = "transfusion"

# Config fields, in the order they are written.
CONFIG_KEYS = (
    "vocab_size", "d_model", "n_layers", "n_heads", "mlp_hidden", "max_seq_len",
    "image_size", "image_channels", "patch_size", "diffusion_steps", "schedule",
    "rope_theta", "norm_eps",
    "bos_id", "eos_id", "boi_id", "eoi_id", "pad_id", "user_id", "assistant_id",
)
_FLOAT_KEYS = ("rope_theta", "norm_eps")
_STRING_KEYS = ("schedule",)

# The image side's recipe (issue 14): optional, in the order written, with the
# value a config without the field has. Written only when not that value.
RECIPE_DEFAULTS = {
    "prediction": "eps", "t_sampling": "uniform", "t_mean": 0.0, "t_scale": 1.0,
    "min_snr_gamma": 0.0, "time_conditioning": "add",
    "image_encoder": "linear", "unet_channels": 32, "unet_blocks": 1, "unet_skips": True,
    "conv_channels": 16, "image_rope": "1d",
}
_RECIPE_INTS = ("unet_channels", "unet_blocks", "conv_channels")
PREDICTIONS = ("eps", "v", "x")
T_SAMPLINGS = ("uniform", "logit_normal")
TIME_CONDITIONINGS = ("add", "adaln_zero")
IMAGE_ENCODERS = ("linear", "unet", "conv")
IMAGE_ROPES = ("1d", "axial")

# Kinds of position (as TF_POS_* in engine/transfusion.h).
POS_PAD, POS_TEXT, POS_PATCH = 0, 1, 2

# Timestep code base (fixed, not rope_theta) and cosine schedule offset.
TIME_CODE_BASE = 10000.0
COSINE_S = 0.008


# ---- Config --------------------------------------------------------------

def validate_config(config, what="config"):
    """Checks every field and the relations between them; returns a clean
    copy with ints as int and floats as float."""
    missing = [k for k in CONFIG_KEYS if k not in config]
    if missing:
        raise ValueError(f"{what}: missing field(s) {', '.join(missing)}")
    c = {}
    for k in CONFIG_KEYS:
        v = config[k]
        if k in _STRING_KEYS:
            if not isinstance(v, str):
                raise ValueError(f"{what}: field '{k}' is {v!r}, expected a string")
            c[k] = v
        elif k in _FLOAT_KEYS:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"{what}: field '{k}' is {v!r}, expected a positive number")
            c[k] = float(v)
        else:
            if isinstance(v, bool) or not isinstance(v, int) and not (isinstance(v, float) and v.is_integer()):
                raise ValueError(f"{what}: field '{k}' is {v!r}, expected an integer")
            c[k] = int(v)

    def need(cond, message):
        if not cond:
            raise ValueError(f"{what}: {message}")

    for k in ("vocab_size", "d_model", "n_layers", "n_heads", "mlp_hidden", "max_seq_len",
              "image_size", "image_channels", "patch_size", "diffusion_steps"):
        need(c[k] > 0, f"field '{k}' is {c[k]}, expected > 0")
    need(c["schedule"] == "cosine", f"field 'schedule' is '{c['schedule']}', expected 'cosine'")
    need(c["d_model"] % c["n_heads"] == 0,
         f"d_model {c['d_model']} is not a multiple of n_heads {c['n_heads']}")
    need((c["d_model"] // c["n_heads"]) % 2 == 0, "head dimension must be even (RoPE pairs)")
    need(c["d_model"] % 2 == 0, "d_model must be even (timestep code)")
    need(c["image_size"] % c["patch_size"] == 0,
         f"image_size {c['image_size']} is not a multiple of patch_size {c['patch_size']}")
    for k in ("bos_id", "eos_id", "boi_id", "eoi_id", "pad_id", "user_id", "assistant_id"):
        need(0 <= c[k] < c["vocab_size"], f"field '{k}' is {c[k]}, expected 0..{c['vocab_size'] - 1}")
    for k, default in RECIPE_DEFAULTS.items():
        v = config.get(k, default)
        if isinstance(default, str):
            need(isinstance(v, str), f"field '{k}' is {v!r}, expected a string")
        elif isinstance(default, bool):
            need(isinstance(v, bool), f"field '{k}' is {v!r}, expected true or false")
        elif k in _RECIPE_INTS:
            need(not isinstance(v, bool) and isinstance(v, int), f"field '{k}' is {v!r}, expected an integer")
        else:
            need(not isinstance(v, bool) and isinstance(v, (int, float)),
                 f"field '{k}' is {v!r}, expected a number")
            v = float(v)
        c[k] = v
    need(c["prediction"] in PREDICTIONS, f"field 'prediction' is {c['prediction']!r}")
    need(c["t_sampling"] in T_SAMPLINGS, f"field 't_sampling' is {c['t_sampling']!r}")
    need(c["time_conditioning"] in TIME_CONDITIONINGS,
         f"field 'time_conditioning' is {c['time_conditioning']!r}")
    need(c["t_scale"] > 0 and c["min_snr_gamma"] >= 0, "t_scale must be > 0, min_snr_gamma ≥ 0")
    need(c["image_encoder"] in IMAGE_ENCODERS, f"field 'image_encoder' is {c['image_encoder']!r}")
    if c["image_encoder"] == "unet":
        p = c["patch_size"]
        need(p >= 2 and p & (p - 1) == 0, f"image_encoder 'unet' needs a power-of-2 patch_size, not {p}")
        need(1 <= c["unet_channels"] <= 4096 and 0 <= c["unet_blocks"] <= 16,
             "unet_channels must be 1..4096, unet_blocks 0..16")
    if c["image_encoder"] == "conv":
        need(1 <= c["conv_channels"] <= 4096, f"conv_channels is {c['conv_channels']}, expected 1..4096")
    need(c["image_rope"] in IMAGE_ROPES, f"field 'image_rope' is {c['image_rope']!r}")
    return c


def config_to_json(config):
    c = validate_config(config)
    out = {k: c[k] for k in CONFIG_KEYS}
    if c["prediction"] != "eps":
        out["prediction"] = c["prediction"]
    if c["t_sampling"] != "uniform":
        out.update(t_sampling=c["t_sampling"], t_mean=c["t_mean"], t_scale=c["t_scale"])
    if c["min_snr_gamma"] > 0:
        out["min_snr_gamma"] = c["min_snr_gamma"]
    if c["time_conditioning"] != "add":
        out["time_conditioning"] = c["time_conditioning"]
    if c["image_encoder"] != "linear":
        out["image_encoder"] = c["image_encoder"]
    # each encoder's own fields only with it
    if c["image_encoder"] == "unet":
        out.update(unet_channels=c["unet_channels"], unet_blocks=c["unet_blocks"])
        if not c["unet_skips"]:
            out["unet_skips"] = False
    if c["image_encoder"] == "conv":
        out["conv_channels"] = c["conv_channels"]
    if c["image_rope"] != "1d":
        out["image_rope"] = c["image_rope"]
    return json.dumps(out, separators=(",", ":"))


def head_dim(c):
    return c["d_model"] // c["n_heads"]


def patches_per_side(c):
    return c["image_size"] // c["patch_size"]


def n_patches(c):
    return patches_per_side(c) ** 2


def patch_dim(c):
    return c["image_channels"] * c["patch_size"] ** 2


def unet_levels(c):
    """log2(patch_size): each U-Net level halves the image's side."""
    return c["patch_size"].bit_length() - 1


def _unet_block_shapes(prefix, C, d):
    return [(prefix + "conv1_norm.weight", (C,)), (prefix + "conv1.weight", (C, 9 * C)),
            (prefix + "conv1.bias", (C,)), (prefix + "time.weight", (C, d)),
            (prefix + "time.bias", (C,)), (prefix + "conv2_norm.weight", (C,)),
            (prefix + "conv2.weight", (C, 9 * C)), (prefix + "conv2.bias", (C,))]


def unet_shapes(c, encoder):
    """The U-Net's tensors: the encoder (where patch_in stands) or the decoder
    (where patch_out does). Convolutions are [Cout, 3·3·Cin], columns (ky, kx, cin)."""
    C, d, Ci, B = c["unet_channels"], c["d_model"], c["image_channels"], c["unet_blocks"]
    levels = unet_levels(c)
    if encoder:
        shapes = [("unet.in.weight", (C, 9 * Ci)), ("unet.in.bias", (C,))]
        for lv in range(levels):
            for b in range(B):
                shapes += _unet_block_shapes(f"unet.down.{lv}.block.{b}.", C, d)
            shapes += [(f"unet.down.{lv}.conv.weight", (C, 9 * C)), (f"unet.down.{lv}.conv.bias", (C,))]
        return shapes + [("unet.proj_in.weight", (d, C)), ("unet.proj_in.bias", (d,))]
    shapes = [("unet.proj_out.weight", (C, d)), ("unet.proj_out.bias", (C,))]
    for lv in reversed(range(levels)):
        shapes += [(f"unet.up.{lv}.conv.weight", (C, 9 * C)), (f"unet.up.{lv}.conv.bias", (C,))]
        for b in range(B):
            shapes += _unet_block_shapes(f"unet.up.{lv}.block.{b}.", C, d)
    return shapes + [("unet.out_norm.weight", (C,)), ("unet.out.weight", (Ci, 9 * C)),
                     ("unet.out.bias", (Ci,))]


def conv_cell(c):
    """The values of one patch of the conv encoder's features: p·p·conv_channels."""
    return c["patch_size"] ** 2 * c["conv_channels"]


def conv_shapes(c, encoder):
    """The conv encoder's tensors: the stem and the patches' map in (where
    patch_in stands) or the map out and the head (where patch_out does).
    Convolutions are [Cout, 3·3·Cin], columns (ky, kx, cin), as the U-Net's."""
    C, d, Ci, cell = c["conv_channels"], c["d_model"], c["image_channels"], conv_cell(c)
    if encoder:
        return [("conv.stem.weight", (C, 9 * Ci)), ("conv.stem.bias", (C,)),
                ("conv.in.weight", (d, cell)), ("conv.in.bias", (d,))]
    return [("conv.out.weight", (cell, d)), ("conv.out.bias", (cell,)),
            ("conv.head.weight", (Ci, 9 * C)), ("conv.head.bias", (Ci,))]


def image_shapes(c, encoder):
    """The image encoder's tensors (@encoder) or its decoder's, as config["image_encoder"] says."""
    d, pd = c["d_model"], patch_dim(c)
    if c["image_encoder"] == "unet":
        return unet_shapes(c, encoder)
    if c["image_encoder"] == "conv":
        return conv_shapes(c, encoder)
    if encoder:
        return [("patch_in.weight", (d, pd)), ("patch_in.bias", (d,))]
    return [("patch_out.weight", (pd, d)), ("patch_out.bias", (pd,))]


def param_shapes(c):
    """[(name, shape)] of every parameter, in checkpoint order."""
    d, V, h = c["d_model"], c["vocab_size"], c["mlp_hidden"]
    shapes = [("tok_emb.weight", (V, d))]
    shapes += image_shapes(c, True)
    shapes += [
        ("patch_pos", (n_patches(c), d)),
        ("time_mlp.0.weight", (d, d)),
        ("time_mlp.0.bias", (d,)),
        ("time_mlp.2.weight", (d, d)),
        ("time_mlp.2.bias", (d,)),
    ]
    for i in range(c["n_layers"]):
        p = f"layers.{i}."
        shapes += [
            (p + "attn_norm.weight", (d,)),
            (p + "attn.wq", (d, d)),
            (p + "attn.wk", (d, d)),
            (p + "attn.wv", (d, d)),
            (p + "attn.wo", (d, d)),
            (p + "mlp_norm.weight", (d,)),
            (p + "mlp.w1", (h, d)),
            (p + "mlp.w3", (h, d)),
            (p + "mlp.w2", (d, h)),
        ]
        if c["time_conditioning"] == "adaln_zero":
            shapes += [(p + "adaln.weight", (6 * d, d)), (p + "adaln.bias", (6 * d,))]
    shapes += [
        ("norm.weight", (d,)),
        ("lm_head.weight", (V, d)),
    ]
    shapes += image_shapes(c, False)
    if c["time_conditioning"] == "adaln_zero":
        shapes += [("final_adaln.weight", (2 * d, d)), ("final_adaln.bias", (2 * d,))]
    return shapes


def is_norm(name):
    return name.endswith("norm.weight")


def is_bias(name):
    return name.endswith(".bias")


# ---- Noise schedule ------------------------------------------------------

def cosine_alpha_bar(T, s=COSINE_S):
    """ᾱ(t), t = 0..T, float64 (Nichol & Dhariwal): f(t) = cos²(((t/T + s)/(1 + s))·π/2),
    beta_t = min(1 − f(t)/f(t−1), 0.999), ᾱ(0) = 1, ᾱ(t) = ᾱ(t−1)·(1 − beta_t)."""
    def f(t):
        return math.cos(((t / T + s) / (1 + s)) * math.pi / 2) ** 2

    alpha_bar = np.empty(T + 1, dtype=np.float64)
    alpha_bar[0] = 1.0
    for t in range(1, T + 1):
        beta = min(1.0 - f(t) / f(t - 1), 0.999)
        alpha_bar[t] = alpha_bar[t - 1] * (1.0 - beta)
    return alpha_bar


def diffusion_target(prediction, x0, eps, t, alpha_bar):
    """What the image head learns at level t, float64: ε, v = √ᾱ·ε − √(1−ᾱ)·x0, or x0."""
    a = alpha_bar[t]
    if prediction == "v":
        return math.sqrt(a) * np.asarray(eps, np.float64) - math.sqrt(1.0 - a) * np.asarray(x0, np.float64)
    if prediction == "x":
        return np.asarray(x0, dtype=np.float64)
    return np.asarray(eps, dtype=np.float64)


def diffusion_loss_weight(config, t, alpha_bar):
    """1, or Min-SNR-γ: min(SNR, γ) over what the target's MSE weighs by
    already (SNR for ε, SNR + 1 for v, 1 for x0), SNR = ᾱ/(1 − ᾱ)."""
    gamma = config["min_snr_gamma"]
    if gamma <= 0:
        return 1.0
    a = alpha_bar[t]
    snr = a / (1.0 - a)
    clipped = min(snr, gamma)
    return {"eps": clipped / snr, "v": clipped / (snr + 1.0), "x": clipped}[config["prediction"]]


def x0_of(prediction, x_t, pred, a):
    """The x0 a prediction implies at x_t with ᾱ = a (float64, not clipped)."""
    if prediction == "v":
        return math.sqrt(a) * x_t - math.sqrt(1.0 - a) * pred
    if prediction == "x":
        return pred
    return (x_t - math.sqrt(1.0 - a) * pred) / math.sqrt(a)


def noise_image(pixels, noise, t, alpha_bar):
    """x_t = sqrt(ᾱ(t))·x0 + sqrt(1 − ᾱ(t))·ε over the whole H×W×C image, float64."""
    x0 = np.asarray(pixels, dtype=np.float64)
    eps = np.asarray(noise, dtype=np.float64)
    a = alpha_bar[t]
    return math.sqrt(a) * x0 + math.sqrt(1.0 - a) * eps


# ---- Patches ---------------------------------------------------------------

def patchify(image, p):
    """[H, W, C] -> [P·P, p·p·C]: patch k = pr·P + pc, element (dy·p + dx)·C + c
    holds pixel (pr·p + dy, pc·p + dx, c)."""
    H, W, C = image.shape
    x = image.reshape(H // p, p, W // p, p, C).permute(0, 2, 1, 3, 4)
    return x.reshape((H // p) * (W // p), p * p * C)


def unpatchify(patches, image_size, p, C):
    """Inverse of patchify: [P·P, p·p·C] -> [H, W, C]."""
    P = image_size // p
    x = patches.reshape(P, P, p, p, C).permute(0, 2, 1, 3, 4)
    return x.reshape(image_size, image_size, C)


# ---- Batch layout ----------------------------------------------------------

class Layout:
    """Where everything sits in the padded batch [B, L].

    kind: POS_PAD/POS_TEXT/POS_PATCH; doc: document id within the row (−1 for
    padding); pos: RoPE position (index within the document); pos_col: RoPE's
    position for the odd rotation pairs, the same as pos but for patches
    under axial RoPE, whose pos and pos_col are the image's first index plus
    the patch's grid row and column; token: text id
    or −1; image: image index or −1; patch: patch index k or −1; target: the
    LM target token or −1. images: [(index, row, start, t, diffusion_loss)]
    in batch order."""

    def __init__(self, batch, config):
        c = config
        n_img = n_patches(c)
        rows = []
        self.images = []
        self.noised = set()   # image indices whose pixels are x_t as given
        seen = set()
        for b, row in enumerate(batch):
            if not row:
                raise ValueError(f"batch: row {b} has no segments")
            kinds, docs, poss, cols, tokens, imgs, patches = [], [], [], [], [], [], []
            doc, pos = -1, 0
            for s, seg in enumerate(row):
                where = f"batch: row {b} segment {s}"
                # The first segment of a row always starts a document.
                if s == 0 or seg.get("new_document", False):
                    doc += 1
                    pos = 0
                if "text" in seg:
                    for tok in seg["text"]:
                        if not isinstance(tok, int) or not 0 <= tok < c["vocab_size"]:
                            raise ValueError(f"{where}: token {tok!r} out of range 0..{c['vocab_size'] - 1}")
                        kinds.append(POS_TEXT); docs.append(doc); poss.append(pos); cols.append(pos)
                        tokens.append(tok); imgs.append(-1); patches.append(-1)
                        pos += 1
                elif "image" in seg:
                    index, t = seg["image"], seg["t"]
                    if index in seen:
                        raise ValueError(f"{where}: image {index} appears twice")
                    seen.add(index)
                    if not isinstance(t, int) or not 0 <= t <= c["diffusion_steps"]:
                        raise ValueError(f"{where}: t = {t!r} out of range 0..{c['diffusion_steps']}")
                    if seg.get("noised", False):
                        if seg.get("diffusion_loss", False):
                            raise ValueError(f"{where}: a 'noised' image has no diffusion loss")
                        self.noised.add(index)
                    self.images.append((index, b, len(kinds), t, bool(seg.get("diffusion_loss", False))))
                    first, side = pos, patches_per_side(c)
                    for k in range(n_img):
                        kinds.append(POS_PATCH); docs.append(doc)
                        if c["image_rope"] == "axial":   # grid row and column
                            poss.append(first + k // side); cols.append(first + k % side)
                        else:
                            poss.append(pos); cols.append(pos)
                        tokens.append(-1); imgs.append(index); patches.append(k)
                        pos += 1
                else:
                    raise ValueError(f"{where}: neither 'text' nor 'image'")
            if len(kinds) > c["max_seq_len"]:
                raise ValueError(f"batch: row {b} has {len(kinds)} positions, "
                                 f"more than max_seq_len {c['max_seq_len']}")
            rows.append((kinds, docs, poss, cols, tokens, imgs, patches))

        B = len(rows)
        L = max(len(r[0]) for r in rows)
        self.B, self.L = B, L
        self.kind = np.full((B, L), POS_PAD, dtype=np.int64)
        self.doc = np.full((B, L), -1, dtype=np.int64)
        self.pos = np.zeros((B, L), dtype=np.int64)
        self.pos_col = np.zeros((B, L), dtype=np.int64)
        self.token = np.full((B, L), -1, dtype=np.int64)
        self.image = np.full((B, L), -1, dtype=np.int64)
        self.patch = np.full((B, L), -1, dtype=np.int64)
        for b, (kinds, docs, poss, cols, tokens, imgs, patches) in enumerate(rows):
            n = len(kinds)
            self.kind[b, :n] = kinds
            self.doc[b, :n] = docs
            self.pos[b, :n] = poss
            self.pos_col[b, :n] = cols
            self.token[b, :n] = tokens
            self.image[b, :n] = imgs
            self.patch[b, :n] = patches

        # LM target: the next token, when the next position is text of the same document.
        self.target = np.full((B, L), -1, dtype=np.int64)
        nxt_text = (self.kind[:, 1:] == POS_TEXT) & (self.kind[:, :-1] == POS_TEXT)
        same_doc = self.doc[:, 1:] == self.doc[:, :-1]
        has = nxt_text & same_doc
        self.target[:, :-1] = np.where(has, self.token[:, 1:], -1)

    def attention_mask(self):
        """[B, L, L] bool: query i sees key j iff same document, neither is
        padding, and (j ≤ i, or i and j are patches of the same image)."""
        L = self.L
        real = self.kind != POS_PAD
        same_doc = self.doc[:, :, None] == self.doc[:, None, :]
        causal = np.arange(L)[None, :] <= np.arange(L)[:, None]
        patch = self.kind == POS_PATCH
        same_image = patch[:, :, None] & patch[:, None, :] & (self.image[:, :, None] == self.image[:, None, :])
        return real[:, :, None] & real[:, None, :] & same_doc & (causal[None] | same_image)


# ---- Layers ------------------------------------------------------------------

def rmsnorm(x, weight, eps):
    """x / sqrt(mean(x²) + eps) · weight over the last dimension."""
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def silu(x):
    return x * torch.sigmoid(x)


def timestep_code(t, d, dtype):
    """Sinusoidal code of t (dim d): [cos(t·f_0..f_{h−1}), sin(t·f_0..f_{h−1})],
    f_i = exp(−ln(10000)·i/h), h = d/2. Float64, then rounded to @dtype."""
    half = d // 2
    freqs = np.exp(-math.log(TIME_CODE_BASE) * np.arange(half, dtype=np.float64) / half)
    angles = t * freqs
    return torch.tensor(np.concatenate([np.cos(angles), np.sin(angles)]), dtype=dtype)


def time_embedding(code, w0, b0, w2, b2):
    """temb(t) = W2 · silu(W0 · code + b0) + b2."""
    return F.linear(silu(F.linear(code, w0, b0)), w2, b2)


def patch_embedding(x_t, w, b, pos_emb, temb, p):
    """Patch k of the noised image -> W·patch_k + b + patch_pos[k] + temb(t).  [n_patches, d]"""
    return F.linear(patchify(x_t, p), w, b) + pos_emb + temb


def rope_tables(pos, hd, theta, dtype, pos_col=None):
    """cos/sin [B, L, 1, hd/2] of pair j's angle p·theta^(−2j/hd), float64
    then @dtype, with p from @pos for even j and from @pos_col (default
    @pos) for odd j: axial RoPE turns half the pairs, of every frequency
    band, by a patch's row and the other half by its column."""
    j = np.arange(hd // 2, dtype=np.float64)
    inv_freq = theta ** (-2.0 * j / hd)
    p = pos.astype(np.float64)[:, :, None]
    if pos_col is not None:
        p = np.where(j % 2 == 0, p, pos_col.astype(np.float64)[:, :, None])
    angles = p * inv_freq
    cos = torch.tensor(np.cos(angles)[:, :, None, :], dtype=dtype)
    sin = torch.tensor(np.sin(angles)[:, :, None, :], dtype=dtype)
    return cos, sin


def rope(x, cos, sin):
    """Rotates interleaved pairs (2j, 2j+1) of x [B, L, H, hd]:
    (a, b) -> (a·cos − b·sin, a·sin + b·cos)."""
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)


def attention(xn, wq, wk, wv, wo, cos, sin, mask, n_heads):
    """Multi-head self-attention with RoPE under @mask [B, L, L].
    Queries that see no key (padding) get a zero output."""
    B, L, d = xn.shape
    hd = d // n_heads
    q = rope(F.linear(xn, wq).view(B, L, n_heads, hd), cos, sin).transpose(1, 2)
    k = rope(F.linear(xn, wk).view(B, L, n_heads, hd), cos, sin).transpose(1, 2)
    v = F.linear(xn, wv).view(B, L, n_heads, hd).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / math.sqrt(hd)            # [B, H, L, L]
    m = mask[:, None]                                            # [B, 1, L, L]
    has_key = m.any(-1, keepdim=True)                            # [B, 1, L, 1]
    scores = scores.masked_fill(~m, float("-inf"))
    scores = torch.where(has_key, scores, torch.zeros_like(scores))  # no all −inf rows
    probs = torch.softmax(scores, dim=-1) * has_key
    out = (probs @ v).transpose(1, 2).reshape(B, L, d)
    return F.linear(out, wo)


def swiglu(xn, w1, w3, w2):
    """w2 · (silu(w1 · xn) * (w3 · xn))."""
    return F.linear(silu(F.linear(xn, w1)) * F.linear(xn, w3), w2)


def block(x, layer, cos, sin, mask, n_heads, eps, mod=None):
    """One pre-norm transformer layer. With adaLN-Zero, @mod is six [B, L, d]
    tensors (shift, scale, gate of attention, then of the MLP): at image
    positions each sublayer's input is norm(x)·(1 + scale) + shift and its
    output is multiplied by the gate; elsewhere they are 0, 0 and 1."""
    if mod is None:
        x = x + attention(rmsnorm(x, layer.attn_norm.weight, eps),
                          layer.attn.wq, layer.attn.wk, layer.attn.wv, layer.attn.wo,
                          cos, sin, mask, n_heads)
        x = x + swiglu(rmsnorm(x, layer.mlp_norm.weight, eps),
                       layer.mlp.w1, layer.mlp.w3, layer.mlp.w2)
        return x
    sh1, sc1, g1, sh2, sc2, g2 = mod
    x = x + g1 * attention(rmsnorm(x, layer.attn_norm.weight, eps) * (1 + sc1) + sh1,
                           layer.attn.wq, layer.attn.wk, layer.attn.wv, layer.attn.wo,
                           cos, sin, mask, n_heads)
    x = x + g2 * swiglu(rmsnorm(x, layer.mlp_norm.weight, eps) * (1 + sc2) + sh2,
                        layer.mlp.w1, layer.mlp.w3, layer.mlp.w2)
    return x


def conv2d(x, w, b, k, stride):
    """A k×k convolution (zero padding k/2) of channels-last images x [n, H, W, Cin]
    with the engine's weight layout w [Cout, k·k·Cin], columns (ky, kx, cin)."""
    weight = w.view(w.shape[0], k, k, x.shape[-1]).permute(0, 3, 1, 2)   # [Cout, Cin, k, k]
    y = F.conv2d(x.permute(0, 3, 1, 2), weight, b, stride=stride, padding=k // 2)
    return y.permute(0, 2, 3, 1)


def upsample2x(x):
    """Nearest-neighbour 2× up-sampling of [n, H, W, C]."""
    return x.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)


def unet_block(x, block, temb, eps):
    """The residual block: h = conv(silu(norm(x))) + W_t·temb + b_t;
    x + conv(silu(norm(h))). norm: RMSNorm over each pixel's channels."""
    h = conv2d(silu(rmsnorm(x, block.conv1_norm.weight, eps)), block.conv1.weight, block.conv1.bias, 3, 1)
    h = h + F.linear(temb, block.time.weight, block.time.bias)[:, None, None, :]
    h = conv2d(silu(rmsnorm(h, block.conv2_norm.weight, eps)), block.conv2.weight, block.conv2.bias, 3, 1)
    return x + h


def unet_encode(unet, x_t, temb, c):
    """x_t [S, S, C] -> (tokens [n_patches, d] in patch order, the skips of every level)."""
    eps = c["norm_eps"]
    temb = temb[None]
    h = conv2d(x_t[None], unet["in"].weight, unet["in"].bias, 3, 1)
    skips = []
    for lv in range(unet_levels(c)):
        level = unet["down"][str(lv)]
        for b in range(c["unet_blocks"]):
            h = unet_block(h, level["block"][str(b)], temb, eps)
        skips.append(h)
        h = conv2d(h, level["conv"].weight, level["conv"].bias, 3, 2)
    return F.linear(h.reshape(-1, h.shape[-1]), unet["proj_in"].weight, unet["proj_in"].bias), skips


def unet_decode(unet, hidden, skips, temb, c):
    """The final hidden states of one image's patches [n_patches, d] -> the
    prediction [S, S, C]: per level, up-sample, conv, add the skip (unless
    unet_skips is false), blocks."""
    eps, P = c["norm_eps"], patches_per_side(c)
    temb = temb[None]
    h = F.linear(hidden, unet["proj_out"].weight, unet["proj_out"].bias).view(1, P, P, -1)
    for lv in reversed(range(unet_levels(c))):
        level = unet["up"][str(lv)]
        h = conv2d(upsample2x(h), level["conv"].weight, level["conv"].bias, 3, 1)
        if c["unet_skips"]:
            h = h + skips[lv]
        for b in range(c["unet_blocks"]):
            h = unet_block(h, level["block"][str(b)], temb, eps)
    h = silu(rmsnorm(h, unet["out_norm"].weight, eps))
    return conv2d(h, unet["out"].weight, unet["out"].bias, 3, 1)[0]


def conv_encode(conv, x_t, c):
    """The conv encoder: x_t [S, S, C] -> conv 3×3 -> SiLU -> patches of
    p·p·conv_channels values -> linear: the tokens [n_patches, d]."""
    h = silu(conv2d(x_t[None], conv["stem"].weight, conv["stem"].bias, 3, 1))[0]
    return F.linear(patchify(h, c["patch_size"]), conv["in"].weight, conv["in"].bias)


def conv_decode(conv, hidden, c):
    """The final hidden states of one image's patches [n_patches, d] -> linear
    -> unpatchify to [S, S, conv_channels] -> SiLU -> conv 3×3: the prediction [S, S, C]."""
    cells = F.linear(hidden, conv["out"].weight, conv["out"].bias)
    h = silu(unpatchify(cells, c["image_size"], c["patch_size"], c["conv_channels"]))
    return conv2d(h[None], conv["head"].weight, conv["head"].bias, 3, 1)[0]


def adaln_modulation(temb, w, b, n_chunks):
    """adaLN (DiT): W·silu(temb) + b, cut into @n_chunks vectors of size d."""
    return F.linear(silu(temb), w, b).chunk(n_chunks, dim=-1)


def per_position(layout, per_image, fill, d, dtype, device):
    """[B, L, d]: @per_image[index] at the patches of each image, @fill elsewhere."""
    out = torch.full((layout.B, layout.L, d), fill, dtype=dtype, device=device)
    rows = []
    for b in range(layout.B):
        row = [per_image[int(i)] if i >= 0 else out[b, j]
               for j, i in enumerate(layout.image[b])]
        rows.append(torch.stack(row))
    return torch.stack(rows)


# ---- Module ------------------------------------------------------------------

class _Weight(nn.Module):
    def __init__(self, *shape):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(*shape))


class _Linear(nn.Module):
    def __init__(self, n_out, n_in):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_out, n_in))
        self.bias = nn.Parameter(torch.empty(n_out))


class _Attention(nn.Module):
    def __init__(self, d):
        super().__init__()
        for name in ("wq", "wk", "wv", "wo"):
            setattr(self, name, nn.Parameter(torch.empty(d, d)))


class _MLP(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.w1 = nn.Parameter(torch.empty(h, d))
        self.w3 = nn.Parameter(torch.empty(h, d))
        self.w2 = nn.Parameter(torch.empty(d, h))


class _UnetBlock(nn.Module):
    def __init__(self, C, d):
        super().__init__()
        self.conv1_norm = _Weight(C)
        self.conv1 = _Linear(C, 9 * C)
        self.time = _Linear(C, d)
        self.conv2_norm = _Weight(C)
        self.conv2 = _Linear(C, 9 * C)


def _unet_module(c):
    """unet.in, unet.down.L.{block.B, conv}, unet.proj_in, unet.proj_out,
    unet.up.L.{conv, block.B}, unet.out_norm, unet.out."""
    C, d, Ci, B = c["unet_channels"], c["d_model"], c["image_channels"], c["unet_blocks"]

    def level():
        return nn.ModuleDict({"block": nn.ModuleDict({str(b): _UnetBlock(C, d) for b in range(B)}),
                              "conv": _Linear(C, 9 * C)})

    levels = range(unet_levels(c))
    return nn.ModuleDict({
        "in": _Linear(C, 9 * Ci), "down": nn.ModuleDict({str(lv): level() for lv in levels}),
        "proj_in": _Linear(d, C), "proj_out": _Linear(C, d),
        "up": nn.ModuleDict({str(lv): level() for lv in levels}),
        "out_norm": _Weight(C), "out": _Linear(Ci, 9 * C)})


def _conv_module(c):
    """conv.stem, conv.in, conv.out, conv.head."""
    C, d, Ci, cell = c["conv_channels"], c["d_model"], c["image_channels"], conv_cell(c)
    return nn.ModuleDict({"stem": _Linear(C, 9 * Ci), "in": _Linear(d, cell),
                          "out": _Linear(cell, d), "head": _Linear(Ci, 9 * C)})


class _Layer(nn.Module):
    def __init__(self, d, h, adaln=False):
        super().__init__()
        self.attn_norm = _Weight(d)
        self.attn = _Attention(d)
        self.mlp_norm = _Weight(d)
        self.mlp = _MLP(d, h)
        if adaln:
            self.adaln = _Linear(6 * d, d)


class Transfusion(nn.Module):
    """The model. Parameter names are the checkpoint's tensor names."""

    def __init__(self, config):
        super().__init__()
        c = self.config = validate_config(config)
        d, V, pd = c["d_model"], c["vocab_size"], patch_dim(c)
        self.tok_emb = _Weight(V, d)
        self.unet = _unet_module(c) if c["image_encoder"] == "unet" else None
        self.conv = _conv_module(c) if c["image_encoder"] == "conv" else None
        if c["image_encoder"] == "linear":
            self.patch_in = _Linear(d, pd)
        self.patch_pos = nn.Parameter(torch.empty(n_patches(c), d))
        self.time_mlp = nn.ModuleDict({"0": _Linear(d, d), "2": _Linear(d, d)})
        self.adaln = c["time_conditioning"] == "adaln_zero"
        self.layers = nn.ModuleList(_Layer(d, c["mlp_hidden"], self.adaln)
                                    for _ in range(c["n_layers"]))
        self.norm = _Weight(d)
        self.lm_head = _Weight(V, d)
        if c["image_encoder"] == "linear":
            self.patch_out = _Linear(pd, d)
        if self.adaln:
            self.final_adaln = _Linear(2 * d, d)
        self.alpha_bar = cosine_alpha_bar(c["diffusion_steps"])

        params = dict(self.named_parameters())
        expected = param_shapes(c)
        assert sorted(params) == sorted(n for n, _ in expected)
        for name, shape in expected:
            assert tuple(params[name].shape) == shape, name

    @property
    def dtype(self):
        return self.tok_emb.weight.dtype

    def ordered_parameters(self):
        """[(name, parameter)] in checkpoint order."""
        params = dict(self.named_parameters())
        return [(name, params[name]) for name, _ in param_shapes(self.config)]

    def forward(self, batch, images, lam=5.0):
        c = self.config
        dtype = self.dtype
        device = self.tok_emb.weight.device   # everything made here goes there
        d, p, C, S = c["d_model"], c["patch_size"], c["image_channels"], c["image_size"]
        layout = Layout(batch, c)
        B, L = layout.B, layout.L

        # Noised images (float64, then the model dtype).
        x_t = {}
        for index, _, _, t, _ in layout.images:
            if index not in images:
                raise ValueError(f"batch: image {index} has no pixels")
            pixels = _numpy64(images[index]["pixels"])
            if index in layout.noised:
                # The pixels are x_t already (a sampler's current image).
                if pixels.shape != (S, S, C):
                    raise ValueError(f"batch: image {index} pixels has shape {list(pixels.shape)}, "
                                     f"expected {[S, S, C]}")
                x_t[index] = torch.tensor(pixels, dtype=dtype, device=device)
                continue
            noise = images[index].get("noise")
            noise = np.zeros_like(pixels) if noise is None and t == 0 else _numpy64(noise)
            for what, a in (("pixels", pixels), ("noise", noise)):
                if a.shape != (S, S, C):
                    raise ValueError(f"batch: image {index} {what} has shape {list(a.shape)}, "
                                     f"expected {[S, S, C]}")
            x_t[index] = torch.tensor(noise_image(pixels, noise, t, self.alpha_bar), dtype=dtype,
                                      device=device)

        # Input embeddings, row by row: tokens, patch embeddings, zero padding.
        rows = []
        tembs = {}   # image index -> temb(t), for adaLN and the U-Net
        skips = {}   # image index -> the U-Net encoder's skips
        for b, row in enumerate(batch):
            parts = []
            for seg in row:
                if "text" in seg:
                    parts.append(self.tok_emb.weight[torch.tensor(seg["text"], dtype=torch.long,
                                                                  device=device)])
                else:
                    t = seg["t"]
                    temb = time_embedding(timestep_code(t, d, dtype).to(device),
                                          self.time_mlp["0"].weight, self.time_mlp["0"].bias,
                                          self.time_mlp["2"].weight, self.time_mlp["2"].bias)
                    tembs[seg["image"]] = temb
                    if self.unet is not None:
                        tokens, skips[seg["image"]] = unet_encode(self.unet, x_t[seg["image"]], temb, c)
                        parts.append(tokens + self.patch_pos + temb)
                    elif self.conv is not None:
                        parts.append(conv_encode(self.conv, x_t[seg["image"]], c) + self.patch_pos + temb)
                    else:
                        parts.append(patch_embedding(x_t[seg["image"]], self.patch_in.weight,
                                                     self.patch_in.bias, self.patch_pos, temb, p))
            n = sum(part.shape[0] for part in parts)
            parts.append(torch.zeros(L - n, d, dtype=dtype, device=device))
            rows.append(torch.cat(parts))
        x = torch.stack(rows)                                   # [B, L, d]

        mask = torch.tensor(layout.attention_mask(), device=device)
        cos, sin = (a.to(device) for a in rope_tables(layout.pos, head_dim(c), c["rope_theta"], dtype,
                                                      layout.pos_col))
        hidden = [x]
        def modulation(w, b, n_chunks):
            """Per position [B, L, d] chunks: 0 for shifts and scales, 1 for gates
            (every third of a layer's six) outside images."""
            chunks = {index: adaln_modulation(temb, w, b, n_chunks) for index, temb in tembs.items()}
            return [per_position(layout, {i: ch[k] for i, ch in chunks.items()},
                                 1.0 if n_chunks == 6 and k % 3 == 2 else 0.0, d, dtype, device)
                    for k in range(n_chunks)]

        for layer in self.layers:
            mod = modulation(layer.adaln.weight, layer.adaln.bias, 6) if self.adaln else None
            x = block(x, layer, cos, sin, mask, c["n_heads"], c["norm_eps"], mod)
            hidden.append(x)

        xn = rmsnorm(x, self.norm.weight, c["norm_eps"])
        logits = F.linear(xn, self.lm_head.weight)             # [B, L, V]

        head_in = xn   # with adaLN the final norm is modulated at image positions
        if self.adaln:
            shift, scale = modulation(self.final_adaln.weight, self.final_adaln.bias, 2)
            head_in = xn * (1 + scale) + shift
        pred = {}   # the image head's output: ε, v or x0 as config["prediction"] says
        for index, b, start, _, _ in layout.images:
            if self.unet is not None:
                pred[index] = unet_decode(self.unet, head_in[b, start:start + n_patches(c)],
                                          skips[index], tembs[index], c)
                continue
            if self.conv is not None:
                pred[index] = conv_decode(self.conv, head_in[b, start:start + n_patches(c)], c)
                continue
            out = F.linear(head_in[b, start:start + n_patches(c)], self.patch_out.weight,
                           self.patch_out.bias)
            pred[index] = unpatchify(out, S, p, C)

        # L_LM: mean cross-entropy over every text target in the batch.
        target = torch.tensor(layout.target, device=device)
        has_target = target >= 0
        if has_target.any():
            lm = F.cross_entropy(logits[has_target], target[has_target], reduction="mean")
        else:
            lm = torch.zeros((), dtype=dtype, device=device)

        # L_DDPM: mean over images (with diffusion_loss and t > 0) of the per-image
        # MSE between the prediction and its target, times the image's weight.
        mses = []
        for index, _, _, t, diffusion_loss in layout.images:
            if diffusion_loss and t > 0:
                target = diffusion_target(c["prediction"], _numpy64(images[index]["pixels"]),
                                          _numpy64(images[index]["noise"]), t, self.alpha_bar)
                target = torch.tensor(target, dtype=dtype, device=device)
                weight = diffusion_loss_weight(c, t, self.alpha_bar)
                mses.append(weight * (pred[index] - target).pow(2).mean())
        ddpm = torch.stack(mses).mean() if mses else torch.zeros((), dtype=dtype, device=device)

        loss = lm + lam * ddpm
        return {"logits": logits, "pred": pred, "lm": lm, "ddpm": ddpm, "loss": loss,
                "x_t": x_t, "hidden": hidden, "layout": layout,
                "n_text_targets": int(has_target.sum()), "n_images": len(mses)}


def _numpy64(a):
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


# ---- Sampling (SPEC §4) ------------------------------------------------------------

def sampler_timesteps(T, n_steps):
    """The respaced timesteps of a run of @n_steps (1..T): τ_i = ⌊(n_steps − i)·T / n_steps⌋,
    i = 0..n_steps−1, in integer arithmetic: τ_0 = T, strictly decreasing, the last ≥ 1.
    The step after the last goes to t = 0."""
    if not isinstance(T, int) or not isinstance(n_steps, int) or T < 1 or not 1 <= n_steps <= T:
        raise ValueError(f"sampler_timesteps: n_steps {n_steps!r} out of range 1..{T!r}")
    return [(n_steps - i) * T // n_steps for i in range(n_steps)]


@torch.no_grad()
def predict_block(model, prefix_ids, x_t, t):
    """The head's prediction [H, W, C] (ε, v or x0 as the model's config says)
    for an image block whose pixels ARE @x_t (no further noising)
    at noise level @t, placed right after the token prefix @prefix_ids: one row,
    one document, [prefix] [image block]. In the model's dtype."""
    batch = [[{"text": [int(i) for i in prefix_ids], "new_document": True},
              {"image": 0, "t": int(t), "noised": True}]]
    out = model(batch, {0: {"pixels": x_t}})
    return out["pred"][0].detach()


def guided_eps(eps_c, eps_u, w):
    """Classifier-free guidance on the model's output (ε, v or x0 alike):
    ε = ε_u + w·(ε_c − ε_u)."""
    return eps_u + w * (eps_c - eps_u)


SAMPLERS = ("ddpm", "ddim")


def sampler_update(sampler, alpha_bar, t, t_prev, x_t, eps, z=None, prediction="eps"):
    """One denoising step from @t to @t_prev (0 ≤ t_prev < t) given the (guided)
    prediction @eps of ε (or of v or x0, as @prediction says), in float64.
    a_t = ᾱ(t), a_p = ᾱ(t_prev) (ᾱ(0) = 1);
    x0 = clip(x0_of(prediction, x_t, eps, a_t), −1, 1), for ε (x_t − √(1−a_t)·ε)/√a_t;
    ddim (η = 0): ε' = (x_t − √a_t·x0)/√(1−a_t); x_prev = √a_p·x0 + √(1−a_p)·ε';
    ddpm: β = 1 − a_t/a_p; x_prev = [√a_p·β/(1−a_t)]·x0 + [√(1−β)·(1−a_p)/(1−a_t)]·x_t
          + √(β·(1−a_p)/(1−a_t))·z, no z term when t_prev == 0.
    Returns (x0, x_prev) as float64 numpy arrays."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler_update: unknown sampler {sampler!r}")
    if not 0 <= t_prev < t < len(alpha_bar):
        raise ValueError(f"sampler_update: need 0 <= t_prev < t <= {len(alpha_bar) - 1}, "
                         f"got t {t}, t_prev {t_prev}")
    x_t = _numpy64(x_t)
    eps = _numpy64(eps)
    a_t = float(alpha_bar[t])
    a_p = 1.0 if t_prev == 0 else float(alpha_bar[t_prev])
    if prediction not in PREDICTIONS:
        raise ValueError(f"sampler_update: unknown prediction {prediction!r}")
    x0 = np.clip(x0_of(prediction, x_t, eps, a_t), -1.0, 1.0)
    if sampler == "ddim":
        eps2 = (x_t - math.sqrt(a_t) * x0) / math.sqrt(1.0 - a_t)
        x_prev = math.sqrt(a_p) * x0 + math.sqrt(1.0 - a_p) * eps2
    else:
        beta = 1.0 - a_t / a_p
        c0 = math.sqrt(a_p) * beta / (1.0 - a_t)
        ct = math.sqrt(1.0 - beta) * (1.0 - a_p) / (1.0 - a_t)
        x_prev = c0 * x0 + ct * x_t
        if t_prev > 0:
            if z is None:
                raise ValueError("sampler_update: ddpm needs z when t_prev > 0")
            x_prev = x_prev + math.sqrt(beta * (1.0 - a_p) / (1.0 - a_t)) * _numpy64(z)
    return x0, x_prev


# ---- Initialisation and checkpoints ---------------------------------------------

@torch.no_grad()
def init_parameters(model, seed=0):
    """Normal(0, 0.02) matrices and embeddings, output projections (attn.wo,
    mlp.w2) scaled by 1/sqrt(2·n_layers), norms 1, biases and adaLN weights 0;
    U-Net matrices normal(0, 1/sqrt(fan-in)) but each block's conv2 and the
    final conv 0, and proj_in (into the transformer) normal(0, 0.02); the conv
    encoder's stem normal(0, 1/sqrt(fan-in)), its head conv 0, its linear maps
    (conv.in, conv.out) normal(0, 0.02). Draws in checkpoint order from one
    generator seeded with @seed."""
    gen = torch.Generator().manual_seed(seed)
    out_scale = 1.0 / math.sqrt(2 * model.config["n_layers"])
    for name, param in model.ordered_parameters():
        if is_norm(name):
            param.fill_(1.0)
        elif is_bias(name) or name.endswith("adaln.weight"):
            param.zero_()   # adaLN-Zero: every image sublayer starts as the identity
        elif name.startswith("unet.") and (name.endswith("conv2.weight") or name == "unet.out.weight"):
            param.zero_()   # every U-Net block starts as the identity, the head at 0
        elif name == "conv.head.weight":
            param.zero_()   # the prediction starts at 0, as the U-Net's
        elif (name.startswith("unet.") and name != "unet.proj_in.weight") or name == "conv.stem.weight":
            w = torch.empty(param.shape, dtype=torch.float32).normal_(0.0, 1.0, generator=gen)
            param.copy_(w / math.sqrt(param.shape[1]))
        else:
            w = torch.empty(param.shape, dtype=torch.float32).normal_(0.0, 0.02, generator=gen)
            if name.endswith("attn.wo") or name.endswith("mlp.w2"):
                w *= out_scale
            param.copy_(w)
    return model


def save_checkpoint(model, config, path, extra_metadata=None, dtype="F32"):
    """Writes the parameters in checkpoint order as @dtype (F32, F16, BF16,
    F64) with "format" and "config" (JSON) in __metadata__."""
    metadata = {"format": FORMAT, "config": config_to_json(config)}
    for key, value in (extra_metadata or {}).items():
        metadata[key] = value
    tensors = [(name, p.detach().cpu().numpy(), dtype) for name, p in model.ordered_parameters()]
    write_safetensors(path, tensors, metadata)


def load_checkpoint(path, dtype=torch.float32):
    """Reads a checkpoint (any float dtype) into a new model of @dtype.
    Returns (model, config, metadata). Errors name the file and the tensor."""
    tensors, metadata = read_safetensors(path)
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path}: __metadata__ 'format' is {metadata.get('format')!r}, "
                         f"expected '{FORMAT}'")
    if "config" not in metadata:
        raise ValueError(f"{path}: __metadata__ has no 'config'")
    try:
        raw_config = json.loads(metadata["config"])
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: __metadata__ 'config' is not JSON ({e})")
    if not isinstance(raw_config, dict):
        raise ValueError(f"{path}: __metadata__ 'config' is not a JSON object")
    config = validate_config(raw_config, what=f"{path}: config")
    model = Transfusion(config).to(dtype)
    expected = param_shapes(config)
    names = {n for n, _ in expected}
    for name in tensors:
        if name not in names:
            raise ValueError(f"{path}: tensor '{name}' is not a parameter of this config")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, shape in expected:
            if name not in tensors:
                raise ValueError(f"{path}: tensor '{name}' is missing")
            a = tensors[name]
            if tuple(a.shape) != shape:
                raise ValueError(f"{path}: tensor '{name}' has shape {list(a.shape)}, "
                                 f"expected {list(shape)}")
            if a.dtype.kind != "f":
                raise ValueError(f"{path}: tensor '{name}' has dtype {a.dtype}, expected a float type")
            params[name].copy_(torch.from_numpy(a.astype(np.float64)))
    return model, config, metadata


def load_batch(path):
    """Reads a batch file (tests/golden/tiny-batch.safetensors).
    Returns (batch, images, lam, tensors, metadata)."""
    tensors, metadata = read_safetensors(path)
    if "batch" not in metadata:
        raise ValueError(f"{path}: __metadata__ has no 'batch'")
    batch = json.loads(metadata["batch"])
    lam = float(metadata.get("lambda", "5"))
    images = {}
    for row in batch:
        for seg in row:
            if "image" in seg:
                i = seg["image"]
                for what in ("pixels", "noise"):
                    if f"image.{i}.{what}" not in tensors:
                        raise ValueError(f"{path}: tensor 'image.{i}.{what}' is missing")
                images[i] = {"pixels": tensors[f"image.{i}.pixels"],
                             "noise": tensors[f"image.{i}.noise"]}
    return batch, images, lam, tensors, metadata
