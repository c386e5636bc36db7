"""train_distributed.py: train the Transfusion model with torch.distributed (DDP).

The model is twin.py's (the C engine's architecture, exactly), the objective
SPEC §3 (L = L_LM + λ·L_DDPM), the tokenizer the byte-level BPE of a model
or tokenizer the C tool made (tokenizer.py), the data and mix training_data.py
(engine/tf-train.c's). The output is our .safetensors checkpoint with the same
tensor names and __metadata__ (format, config, tokenizer, provenance) as
`transfusion-cli train` writes, so `transfusion-cli info/generate/caption/chat`
and the app open it.

    torchrun --nproc_per_node=N tests/reference/train_distributed.py \\
        --tokenizer resources/models/default.safetensors --preset small \\
        --data fashion,wordnet --shards SHARDS --steps 1000 --batch 8 --out model.safetensors

(torchrun here is `/usr/bin/python3 -m torch.distributed.run`.) gloo on CPU,
NCCL on GPUs; --bf16 runs the forward and backward under bf16 autocast on
GPUs (weights, optimizer and EMA stay float32). --batch is rows per rank.

The loss each rank backpropagates is scaled so that DDP's mean of the ranks'
gradients is exactly the gradient of the loss of all ranks' rows as one
batch: L_LM is the mean over every text target of every rank, L_DDPM the
mean over every diffusion image of every rank (the counts are all-reduced
first). check_distributed.py verifies this.
"""

import argparse
import contextlib
import json
import math
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import twin                                   # noqa: E402
import training_data                          # noqa: E402
from tokenizer import Tokenizer               # noqa: E402

# engine/tf-config.c: tf_config_preset.
PRESETS = {
    "tiny": {"d_model": 64, "n_layers": 2, "n_heads": 4, "max_seq_len": 128},
    "small": {"d_model": 128, "n_layers": 4, "n_heads": 4, "max_seq_len": 256},
    "default": {"d_model": 256, "n_layers": 8, "n_heads": 8, "max_seq_len": 256},
    "large": {"d_model": 256, "n_layers": 12, "n_heads": 8, "max_seq_len": 256},
}


def default_mlp_hidden(d):
    """round_up(8/3·d, 32), as tf_config_default_mlp_hidden."""
    return ((8 * d + 2) // 3 + 31) // 32 * 32


def make_config(args, tok):
    p = dict(PRESETS[args.preset])
    for key in ("d_model", "n_layers", "n_heads", "max_seq_len"):
        if getattr(args, key) is not None:
            p[key] = getattr(args, key)
    config = {
        "vocab_size": 0, "d_model": p["d_model"], "n_layers": p["n_layers"],
        "n_heads": p["n_heads"], "mlp_hidden": default_mlp_hidden(p["d_model"]),
        "max_seq_len": p["max_seq_len"], "image_size": 32, "image_channels": 3,
        "patch_size": 4, "diffusion_steps": 1000, "schedule": "cosine",
        "rope_theta": 10000.0, "norm_eps": 1e-5,
    }
    # The image side's recipe (issue 14), as `transfusion-cli train` takes it.
    for key in twin.RECIPE_DEFAULTS:
        if getattr(args, key, None) is not None:
            config[key] = getattr(args, key)
    return twin.validate_config(tok.apply_to_config(config))


def learning_rate(args, step):
    """Linear warm-up, then cosine decay to lr·min_lr_ratio, or with --decay F
    the peak held until the last F of the steps, which decay linearly to it
    (tf_train_learning_rate in tf-train.c)."""
    warm = args.warmup if args.warmup >= 0 else min(1000, max(1, args.steps // 20))
    if step < warm:
        return args.lr * (step + 1) / warm
    if args.decay > 0:
        start = max(warm, args.steps - int(math.floor(args.decay * args.steps + 0.5)))
        if step < start:
            return args.lr
        progress = min(1.0, (step - start) / max(1, args.steps - start))
        return args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) * (1 - progress))
    progress = min(1.0, (step - warm) / max(1, args.steps - warm))
    return args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def distributed_loss(out, lam, world):
    """This rank's share of the global loss, scaled so that DDP's average of
    the ranks' gradients is the gradient of the global loss; and the global
    (loss, lm, ddpm) for the log."""
    n_t, n_i = out["n_text_targets"], out["n_images"]
    device = out["lm"].device
    local = torch.tensor([n_t, n_i, float(out["lm"]) * n_t, float(out["ddpm"]) * n_i],
                         dtype=torch.float64, device=device)
    total = local.clone()
    if world > 1:
        dist.all_reduce(total)
    N_t, N_i = float(total[0]), float(total[1])
    share = out["lm"] * 0.0
    if N_t > 0:
        share = share + world * out["lm"] * (n_t / N_t)
    if N_i > 0:
        share = share + world * lam * out["ddpm"] * (n_i / N_i)
    lm = float(total[2]) / N_t if N_t else 0.0
    ddpm = float(total[3]) / N_i if N_i else 0.0
    return share, (lm + lam * ddpm, lm, ddpm)


def setup():
    """(rank, world, local_rank, device) from torchrun's environment (or one process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"   # threads per rank: OMP_NUM_THREADS (torchrun's default is 1)
    if world > 1:
        dist.init_process_group(backend)
    return rank, world, local_rank, device


def add_recipe_arguments(parser):
    """--prediction, --t-sampling … as `transfusion-cli train` has them (the
    preset's value when not given)."""
    choices = {"prediction": twin.PREDICTIONS, "t_sampling": twin.T_SAMPLINGS,
               "time_conditioning": twin.TIME_CONDITIONINGS, "image_encoder": twin.IMAGE_ENCODERS,
               "image_rope": twin.IMAGE_ROPES}
    def boolean(text):
        if text not in ("true", "false"):
            raise argparse.ArgumentTypeError(f"{text!r} is not true or false")
        return text == "true"

    for key, default in twin.RECIPE_DEFAULTS.items():
        kind = (str if isinstance(default, str) else boolean if isinstance(default, bool)
                else int if isinstance(default, int) else float)
        parser.add_argument("--" + key.replace("_", "-"), dest=key, type=kind,
                            choices=choices.get(key))


def parse_args(argv=None):
    a = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a.add_argument("--tokenizer", required=True,
                   help="a .safetensors (model or training state) whose __metadata__ holds the tokenizer")
    a.add_argument("--out", required=True, help="the model to write (.safetensors)")
    a.add_argument("--preset", default="small", choices=sorted(PRESETS))
    a.add_argument("--d-model", dest="d_model", type=int)
    a.add_argument("--n-layers", dest="n_layers", type=int)
    a.add_argument("--n-heads", dest="n_heads", type=int)
    a.add_argument("--max-seq-len", dest="max_seq_len", type=int)
    add_recipe_arguments(a)
    a.add_argument("--data", default="fashion,emoji,shapes,wordnet")
    a.add_argument("--weights", help="mixing weight of each --data entry (1 each)")
    a.add_argument("--shards", help="folder of `transfusion-cli data --export` files")
    a.add_argument("--steps", type=int, default=1000)
    a.add_argument("--batch", type=int, default=8, help="rows per rank and step")
    a.add_argument("--lr", type=float, default=1e-3)
    a.add_argument("--min-lr-ratio", type=float, default=0.1)
    a.add_argument("--decay", type=float, default=0.0,
                   help="0: cosine; F: hold the peak, then decay linearly over the last F of the steps")
    a.add_argument("--warmup", type=int, default=-1)
    a.add_argument("--weight-decay", type=float, default=0.1)
    a.add_argument("--clip", type=float, default=1.0)
    a.add_argument("--ema-decay", type=float, default=0.999)
    a.add_argument("--image-first", type=float, default=0.2)
    a.add_argument("--cfg-drop", type=float, default=0.1)
    a.add_argument("--chat", type=float, default=0.25)
    a.add_argument("--lambda", dest="lam", type=float, default=5.0)
    a.add_argument("--seed", type=int, default=1)
    a.add_argument("--save-every-steps", type=int, default=0)
    a.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU only)")
    args = a.parse_args(argv)
    if not args.out.endswith(".safetensors"):
        a.error("--out must end in .safetensors")
    return args


def save(model, ema, config, tok_json, args, step, world, elapsed):
    """Rank 0 writes the checkpoint (atomically, by safetensors_io)."""
    provenance = {
        "trainer": "tests/reference/train_distributed.py (torch %s, %d ranks)" % (torch.__version__, world),
        "step": step, "steps": args.steps, "wall_seconds": round(elapsed),
        "weights": "ema",
        "options": json.dumps({k: v for k, v in sorted(vars(args).items()) if k != "out"},
                              separators=(",", ":")),
    }
    # The EMA weights go out, as the C trainer's; the trained ones come back after.
    with torch.no_grad():
        backup = [p.detach().clone() for _, p in model.ordered_parameters()]
        for (_, p), e in zip(model.ordered_parameters(), ema):
            p.copy_(e)
        twin.save_checkpoint(model, config, args.out,
                             {"tokenizer": tok_json,
                              "provenance": json.dumps(provenance, separators=(",", ":"))})
        for (_, p), b in zip(model.ordered_parameters(), backup):
            p.copy_(b)


def main(argv=None):
    args = parse_args(argv)
    rank, world, local_rank, device = setup()
    tok = Tokenizer.from_checkpoint(args.tokenizer)
    tok_json = tok.to_json()
    config = make_config(args, tok)

    names = args.data.split(",")
    weights = [float(w) for w in args.weights.split(",")] if args.weights else [1.0] * len(names)
    sources = [training_data.open_source(n, training_data.TRAIN, config["image_size"],
                                         config["image_channels"], args.shards, tok)
               for n in names]
    mix = training_data.DataMix(sources, weights, tok, config, args.image_first, args.cfg_drop,
                                args.chat)
    rng = np.random.default_rng([args.seed, rank])   # each rank its own stream

    model = twin.init_parameters(twin.Transfusion(config), seed=args.seed).to(device)
    ema = [p.detach().clone() for _, p in model.ordered_parameters()]
    # Some batches have no image (or no text): those parameters get no gradient there.
    ddp = DDP(model, device_ids=[local_rank] if device.type == "cuda" else None,
              find_unused_parameters=True) if world > 1 else model
    params = [p for _, p in model.ordered_parameters()]
    groups = [{"params": [p for p in params if p.ndim == 2], "weight_decay": args.weight_decay},
              {"params": [p for p in params if p.ndim != 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    n_params = sum(p.numel() for p in params)
    if rank == 0:
        print(f"training {args.out}: {n_params} parameters (d {config['d_model']}, "
              f"{config['n_layers']} layers, {config['n_heads']} heads, vocabulary "
              f"{config['vocab_size']}) on {world} rank(s), {device.type}"
              f"{', bf16 autocast' if args.bf16 and device.type == 'cuda' else ''}", flush=True)

    # Only the GPU build of torch has CUDA autocast; on CPU there is nothing to enter.
    autocast = (torch.autocast(device_type="cuda", dtype=torch.bfloat16)
                if args.bf16 and device.type == "cuda" else contextlib.nullcontext())
    log = open(args.out[:-len(".safetensors")] + ".log.jsonl", "w") if rank == 0 else None
    start = time.time()
    for step in range(args.steps):
        t0, cpu0 = time.time(), time.process_time()
        batch, images, positions = mix.build_batch(rng, args.batch)
        lr = learning_rate(args, step)
        for g in opt.param_groups:
            g["lr"] = lr
        with autocast:
            out = ddp(batch, images, lam=args.lam)
        loss, (g_loss, g_lm, g_ddpm) = distributed_loss(out, args.lam, world)
        opt.zero_grad(set_to_none=False)
        loss.backward()
        norm = float(torch.nn.utils.clip_grad_norm_(params, args.clip))
        if not math.isfinite(norm) or not math.isfinite(g_loss):
            raise SystemExit(f"step {step + 1}: the loss or the gradient is not finite "
                             f"(loss {g_loss}, gradient norm {norm}); lower --lr")
        opt.step()
        d = min(args.ema_decay, (1.0 + step) / (10.0 + step))
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.mul_(d).add_(p.detach(), alpha=1.0 - d)

        # Real positions and CPU seconds of all ranks: on a shared machine the
        # CPU time says what the step cost when the wall clock cannot.
        counts = torch.tensor([positions, time.process_time() - cpu0], dtype=torch.float64,
                              device=device)
        if world > 1:
            dist.all_reduce(counts)
        seconds = time.time() - t0
        if rank == 0:
            record = {"step": step + 1, "loss": round(g_loss, 6), "lm": round(g_lm, 6),
                      "ddpm": round(g_ddpm, 6), "lr": lr, "grad_norm": round(norm, 5),
                      "positions": int(counts[0]), "tokens_per_second": round(float(counts[0]) / seconds, 1),
                      "tokens_per_cpu_second": round(float(counts[0]) / max(float(counts[1]), 1e-9), 1),
                      "elapsed": round(time.time() - start, 2), "ranks": world}
            log.write(json.dumps(record) + "\n")
            log.flush()
            print(f"step {step + 1}/{args.steps}  lm {g_lm:.4f}  ddpm {g_ddpm:.4f}  "
                  f"{record['tokens_per_second']:.0f} tok/s  lr {lr:.2e}", flush=True)
            if args.save_every_steps and (step + 1) % args.save_every_steps == 0:
                save(model, ema, config, tok_json, args, step + 1, world, time.time() - start)
    if rank == 0:
        save(model, ema, config, tok_json, args, args.steps, world, time.time() - start)
        log.close()
        print(f"saved {args.out} after {args.steps} steps; peak memory of rank 0 "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB", flush=True)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
