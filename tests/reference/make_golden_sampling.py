"""make_golden_sampling.py: writes the golden file for one sampling step (SPEC §4).

    /usr/bin/python3 tests/reference/make_golden_sampling.py [OUTPUT_DIR]

OUTPUT_DIR defaults to tests/golden/. Reads OUTPUT_DIR/tiny-model.safetensors
(written by make_golden.py; its F32 values are the weights) and writes
  tiny-sampling.safetensors  the ε-predictions of an image block after a
                             conditional and an unconditional prefix, the
                             guided ε, and one DDPM and one DDIM update,
                             computed in float64, stored as F32
Deterministic: the same bytes on every run. After writing, it checks the
sampler conventions (check_sampling) and exits non-zero on a failure.
"""

import json
import math
import os
import sys

import numpy as np
import torch

import twin
from safetensors_io import read_safetensors, write_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(os.path.dirname(HERE), "golden")

SEED = 11
T_STEP, T_PREV = 600, 580          # consecutive steps of a 50-step run
T_LAST, T_LAST_PREV = 20, 0        # the last step of a 50-step run
CFG = 3
TIMESTEP_RUNS = (50, 7)


def make_inputs(config):
    """cond_prefix, uncond_prefix, x_t [S,S,C] F32, z [S,S,C] F32, from one seeded generator."""
    c = config
    rng = np.random.default_rng(SEED)
    special = {c[k] for k in ("bos_id", "eos_id", "boi_id", "eoi_id", "pad_id", "user_id",
                              "assistant_id")}
    ordinary = [i for i in range(c["vocab_size"]) if i not in special]
    words = [ordinary[int(i)] for i in rng.integers(0, len(ordinary), size=5)]
    cond = [c["bos_id"]] + words + [c["boi_id"]]
    uncond = [c["bos_id"], c["boi_id"]]
    shape = (c["image_size"], c["image_size"], c["image_channels"])
    x_t = rng.standard_normal(shape).astype(np.float32)
    z = rng.standard_normal(shape).astype(np.float32)
    return cond, uncond, x_t, z


def f32(a):
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a).astype(np.float32)


def compute(model, cond, uncond, x_t, z):
    """Every stored value, as float64 numpy arrays (None-free dict).
    The updates take the F32-rounded guided ε (the stored `eps`), as the C
    engine's tf_sampler_update would be given it."""
    ab = model.alpha_bar
    out = {}
    for prefix, t, t_prev in (("", T_STEP, T_PREV), ("last.", T_LAST, T_LAST_PREV)):
        eps_c = twin.predict_block(model, cond, x_t, t).numpy().astype(np.float64)
        eps_u = twin.predict_block(model, uncond, x_t, t).numpy().astype(np.float64)
        eps = twin.guided_eps(eps_c, eps_u, float(CFG))
        out[prefix + "eps_c"], out[prefix + "eps_u"], out[prefix + "eps"] = eps_c, eps_u, eps
        eps_in = f32(eps)
        for sampler in twin.SAMPLERS:
            x0, x_prev = twin.sampler_update(sampler, ab, t, t_prev, x_t, eps_in, z)
            out[f"{prefix}{sampler}.x0"] = x0
            out[f"{prefix}{sampler}.x_prev"] = x_prev
        if prefix == "":
            # The same output read as a v- or x0-prediction (issue 14): the
            # sampler arithmetic of the other recipes.
            for kind in PREDICTION_READINGS:
                for sampler in twin.SAMPLERS:
                    x0, x_prev = twin.sampler_update(sampler, ab, t, t_prev, x_t, eps_in, z,
                                                     prediction=kind)
                    out[f"{kind}.{sampler}.x0"] = x0
                    out[f"{kind}.{sampler}.x_prev"] = x_prev
    return out


PREDICTION_READINGS = ("v", "x")


TENSOR_ORDER = ("x_t", "z", "eps_c", "eps_u", "eps",
                "ddpm.x0", "ddpm.x_prev", "ddim.x0", "ddim.x_prev",
                "last.eps_c", "last.eps_u", "last.eps", "last.ddpm.x_prev", "last.ddim.x_prev",
                "v.ddpm.x0", "v.ddpm.x_prev", "v.ddim.x0", "v.ddim.x_prev",
                "x.ddpm.x0", "x.ddpm.x_prev", "x.ddim.x0", "x.ddim.x_prev")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)  # a fixed summation order, so the bytes are reproducible

    model_path = os.path.join(out_dir, "tiny-model.safetensors")
    path = os.path.join(out_dir, "tiny-sampling.safetensors")
    model64, config, _ = twin.load_checkpoint(model_path, dtype=torch.float64)
    T = config["diffusion_steps"]
    cond, uncond, x_t, z = make_inputs(config)
    values = compute(model64, cond, uncond, x_t, z)
    values["x_t"], values["z"] = x_t, z

    tensors = [(name, f32(values[name]), "F32") for name in TENSOR_ORDER]
    compact = dict(separators=(",", ":"))
    metadata = {
        "cond_prefix": json.dumps(cond, **compact),
        "uncond_prefix": json.dumps(uncond, **compact),
        "t": str(T_STEP),
        "t_prev": str(T_PREV),
        "cfg": str(CFG),
        "last.t": str(T_LAST),
        "last.t_prev": str(T_LAST_PREV),
    }
    for n in TIMESTEP_RUNS:
        metadata[f"timesteps.{n}"] = json.dumps(twin.sampler_timesteps(T, n), **compact)
    metadata["model"] = "tiny-model.safetensors"
    metadata["provenance"] = ("tests/reference/make_golden_sampling.py "
                              "(float64 twin, stored as F32)")
    write_safetensors(path, tensors, metadata)

    print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    print(f"cond_prefix={metadata['cond_prefix']} uncond_prefix={metadata['uncond_prefix']}")
    for name in ("eps", "ddpm.x_prev", "ddim.x_prev", "last.ddpm.x_prev"):
        print(f"{name}[:3] = {[float(v) for v in f32(values[name]).reshape(-1)[:3]]}")
    return check_sampling(model_path, path)


# ---- Self-check --------------------------------------------------------------

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


def check_sampler_conventions(alpha_bar):
    """The update rules against independent derivations, in float64."""
    T = len(alpha_bar) - 1
    rng = np.random.default_rng(123)

    # Timesteps.
    check(twin.sampler_timesteps(1000, 50)[:3] == [1000, 980, 960]
          and twin.sampler_timesteps(1000, 50)[-1] == 20, "timesteps 50")
    check(twin.sampler_timesteps(1000, 7) == [1000, 857, 714, 571, 428, 285, 142], "timesteps 7")
    check(twin.sampler_timesteps(T, T) == list(range(T, 0, -1)), "timesteps n = T is every step")
    check(twin.sampler_timesteps(T, 1) == [T], "timesteps n = 1")
    for n in (1, 2, 3, 7, 50, 333, 999, 1000):
        ts = twin.sampler_timesteps(1000, n)
        check(len(ts) == n and ts[0] == 1000 and ts[-1] >= 1
              and all(a > b for a, b in zip(ts, ts[1:])), f"timesteps {n} strictly decreasing")
    for bad in (0, T + 1):
        try:
            twin.sampler_timesteps(T, bad)
            check(False, f"timesteps n = {bad} accepted")
        except ValueError:
            pass

    # Every prediction gives back the x0 that made x_t, at every level.
    for t in (1, 17, 300, 500, 999, T):
        x0, eps = np.clip(rng.standard_normal(64), -1, 1), rng.standard_normal(64)
        a = alpha_bar[t]
        x_t = math.sqrt(a) * x0 + math.sqrt(1 - a) * eps
        for kind in twin.PREDICTIONS:
            pred = twin.diffusion_target(kind, x0, eps, t, alpha_bar)
            got = twin.x0_of(kind, x_t, pred, a)
            # ε → x0 divides by √ᾱ, about 1e-6 at t = T: there it is ill-conditioned
            tol = 1e-9 if kind != "eps" else 1e-9 / math.sqrt(a)
            check(close(got, x0, tol, 0), f"x0 of a {kind} prediction at t = {t}")

    # DDPM: the Gaussian posterior q(x_p | x_t, x0) by the product of
    # q(x_p | x0) = N(√a_p·x0, 1−a_p) and q(x_t | x_p) = N(√(a_t/a_p)·x_p, 1 − a_t/a_p),
    # for consecutive (textbook) and respaced steps; for consecutive steps also the
    # textbook coefficients β_t, √ᾱ_{t−1}β_t/(1−ᾱ_t), √α_t(1−ᾱ_{t−1})/(1−ᾱ_t), β̃_t.
    def f(t):
        return math.cos(((t / T + twin.COSINE_S) / (1 + twin.COSINE_S)) * math.pi / 2) ** 2
    n = 64
    for t, t_prev in ((600, 599), (2, 1), (1, 0), (20, 0), (600, 580), (1000, 857), (980, 960)):
        a_t = alpha_bar[t]
        a_p = 1.0 if t_prev == 0 else alpha_bar[t_prev]
        x0 = rng.uniform(-0.9, 0.9, n)           # inside the clip range
        noise = rng.standard_normal(n)
        x_t = math.sqrt(a_t) * x0 + math.sqrt(1 - a_t) * noise
        z = rng.standard_normal(n)
        got_x0, mean = twin.sampler_update("ddpm", alpha_bar, t, t_prev, x_t, noise, np.zeros(n))
        _, with_z = twin.sampler_update("ddpm", alpha_bar, t, t_prev, x_t, noise, z)
        check(close(got_x0, x0, 1e-9 / math.sqrt(a_t), 0), f"ddpm x0 recovered at t {t}")
        b = 1 - a_t / a_p
        if t_prev > 0:
            var = 1 / (1 / (1 - a_p) + (1 - b) / b)
            mu = var * (math.sqrt(a_p) * x0 / (1 - a_p) + math.sqrt(1 - b) * x_t / b)
        else:
            var, mu = 0.0, x0          # q(x_0 | x_t, x0) is a point mass
        check(close(mean, mu, 1e-9, 1e-9), f"ddpm posterior mean t {t} -> {t_prev}")
        if t_prev > 0:
            check(close(with_z - mean, math.sqrt(var) * z, 1e-12, 1e-9),
                  f"ddpm posterior variance t {t} -> {t_prev}")
        else:
            check(np.array_equal(with_z, mean), f"ddpm has no noise term to t = 0 (from {t})")
        if t_prev == t - 1 and t_prev > 0:
            beta_t = min(1 - f(t) / f(t - 1), 0.999)
            check(abs(b - beta_t) < 1e-12, f"β = 1 − a_t/a_p is the schedule's β_{t}")
            mu_tb = (math.sqrt(a_p) * beta_t / (1 - a_t)) * x0 \
                + (math.sqrt(1 - beta_t) * (1 - a_p) / (1 - a_t)) * x_t
            check(close(mean, mu_tb, 1e-9, 1e-9), f"ddpm textbook mean t {t}")
            check(abs(var - (1 - a_p) / (1 - a_t) * beta_t) < 1e-12, f"ddpm textbook β̃ t {t}")

        # DDIM (η = 0): with the true noise, x0 exactly, and x_prev on the same trajectory.
        got_x0, x_prev = twin.sampler_update("ddim", alpha_bar, t, t_prev, x_t, noise, None)
        check(close(got_x0, x0, 1e-9 / math.sqrt(a_t), 0), f"ddim x0 recovered at t {t}")
        check(close(x_prev, math.sqrt(a_p) * x0 + math.sqrt(1 - a_p) * noise,
                    1e-9 / math.sqrt(a_t), 0), f"ddim stays on the trajectory t {t} -> {t_prev}")

    # Clipping: x0 is in [-1, 1] and DDIM's ε' is re-derived from the clipped x0.
    x_t = 3 * rng.standard_normal(n)
    eps = rng.standard_normal(n)
    x0, x_prev = twin.sampler_update("ddim", alpha_bar, 300, 200, x_t, eps)
    check(np.abs(x0).max() <= 1 and np.abs(x0).max() == 1, "x0 is clipped to [-1, 1]")
    e2 = (x_t - math.sqrt(alpha_bar[300]) * x0) / math.sqrt(1 - alpha_bar[300])
    check(close(x_prev, math.sqrt(alpha_bar[200]) * x0 + math.sqrt(1 - alpha_bar[200]) * e2,
                1e-12, 1e-12), "ddim uses ε' from the clipped x0")

    # To t = 0 both samplers return x0, bit for bit.
    for t in (1, 20, 500, 1000):
        for s in twin.SAMPLERS:
            x0, x_prev = twin.sampler_update(s, alpha_bar, t, 0, x_t, eps, rng.standard_normal(n))
            check(np.array_equal(x0, x_prev), f"{s} t {t} -> 0 returns x0")

    # Guidance.
    ec, eu = rng.standard_normal(n), rng.standard_normal(n)
    check(np.array_equal(twin.guided_eps(ec, eu, 1.0), eu + (ec - eu)), "cfg w = 1")
    check(np.array_equal(twin.guided_eps(ec, eu, 0.0), eu), "cfg w = 0 is unconditional")


def check_noised_block(model64, cond, x_t):
    """predict_block = the ordinary forward with the block's pixels noised to
    the same x_t (x0 = x_t/√a, ε = 0), and the noised flag changes nothing else."""
    t = T_STEP
    a = model64.alpha_bar[t]
    pixels = np.asarray(x_t, np.float64) / math.sqrt(a)
    batch = [[{"text": cond, "new_document": True},
              {"image": 0, "t": t, "diffusion_loss": False, "new_document": False}]]
    with torch.no_grad():
        ref = model64(batch, {0: {"pixels": pixels, "noise": np.zeros_like(pixels)}})
    got = twin.predict_block(model64, cond, x_t, t)
    check(close(got, ref["pred"][0], 1e-12, 1e-10), "noised block = forward with the same x_t")
    check(torch.equal(twin.predict_block(model64, cond, x_t, t), got), "predict_block is deterministic")
    try:
        twin.Layout([[{"image": 0, "t": 5, "noised": True, "diffusion_loss": True}]], model64.config)
        check(False, "a noised image with a diffusion loss is accepted")
    except ValueError:
        pass


def check_sampling(model_path, path):
    """The stored file against a fresh float64 run, float32 against float64, and the
    sampler conventions. Exits non-zero on the first failure."""
    global n_checks
    n_checks = 0
    stored, meta = read_safetensors(path)
    check(list(stored) == list(TENSOR_ORDER), "tensor names and order")
    model64, config, _ = twin.load_checkpoint(model_path, dtype=torch.float64)
    model32, _, _ = twin.load_checkpoint(model_path, dtype=torch.float32)
    ab = model64.alpha_bar
    T = config["diffusion_steps"]
    cond, uncond = json.loads(meta["cond_prefix"]), json.loads(meta["uncond_prefix"])
    check(cond[0] == config["bos_id"] and cond[-1] == config["boi_id"] and len(cond) == 7
          and uncond == [config["bos_id"], config["boi_id"]], "prefixes")
    check((int(meta["t"]), int(meta["t_prev"]), float(meta["cfg"])) == (T_STEP, T_PREV, CFG),
          "t, t_prev, cfg")
    for n in TIMESTEP_RUNS:
        check(json.loads(meta[f"timesteps.{n}"]) == twin.sampler_timesteps(T, n), f"timesteps.{n}")
    ts = twin.sampler_timesteps(T, 50)
    check(T_PREV == ts[ts.index(T_STEP) + 1] and ts[-1] == T_LAST, "the two cases are steps of a 50-step run")

    x_t, z = stored["x_t"], stored["z"]
    fresh = compute(model64, cond, uncond, x_t, z)
    for name in TENSOR_ORDER[2:]:
        check(close(stored[name], fresh[name], 1e-7, 1e-6), f"stored {name} = fresh float64")
        check(np.array_equal(stored[name], f32(fresh[name])), f"stored {name} bytes reproduce")

    # float32 model vs float64: ε and the whole step (update from the float32 ε).
    worst = 0.0
    for prefix, t, t_prev in (("", T_STEP, T_PREV), ("last.", T_LAST, T_LAST_PREV)):
        e32 = {}
        for branch, ids in (("c", cond), ("u", uncond)):
            e32[branch] = twin.predict_block(model32, ids, x_t, t).numpy()
            ref = fresh[f"{prefix}eps_{branch}"]
            worst = max(worst, float(np.abs(e32[branch] - ref).max()))
            check(close(e32[branch], ref, 1e-5, 1e-4), f"float32 {prefix}eps_{branch}")
        eps32 = twin.guided_eps(e32["c"].astype(np.float64), e32["u"].astype(np.float64), float(CFG))
        check(close(eps32, fresh[prefix + "eps"], 1e-4, 1e-4), f"float32 {prefix}eps")
        for s in twin.SAMPLERS:
            _, xp = twin.sampler_update(s, ab, t, t_prev, x_t, f32(eps32), z)
            check(close(xp, fresh[f"{prefix}{s}.x_prev"], 1e-4, 1e-4), f"float32 {prefix}{s}.x_prev")
    print(f"  float32 vs float64 ε: max abs difference {worst:.2e}")

    # The two samplers agree on x0, and to t = 0 both return it.
    check(np.array_equal(stored["ddpm.x0"], stored["ddim.x0"]), "ddpm.x0 = ddim.x0")
    x0_last, _ = twin.sampler_update("ddpm", ab, T_LAST, 0, x_t, stored["last.eps"], z)
    check(np.array_equal(stored["last.ddpm.x_prev"], stored["last.ddim.x_prev"])
          and np.array_equal(stored["last.ddpm.x_prev"], f32(x0_last)), "to t = 0 both give x0")
    check(np.abs(stored["ddpm.x0"]).max() <= 1 and np.abs(stored["last.ddim.x_prev"]).max() <= 1,
          "x0 within [-1, 1]")

    check_noised_block(model64, cond, x_t)
    check_sampler_conventions(ab)
    print(f"sampling selfcheck: {n_checks} checks passed")
    return n_checks


if __name__ == "__main__":
    main()
