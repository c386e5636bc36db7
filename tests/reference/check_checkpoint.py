"""check_checkpoint.py: reads a checkpoint (for example one the C engine wrote)
with the PyTorch twin.

    /usr/bin/python3 tests/reference/check_checkpoint.py MODEL.safetensors
        [--batch tests/golden/tiny-batch.safetensors] [--float64]

Prints the config, the tensors and the parameter count; with --batch, runs the
model on that batch and prints the losses (and, when the batch file holds the
golden losses for the same weights, the difference). Exits non-zero if the
file cannot be read.
"""

import argparse
import json
import sys

import torch

import twin
from safetensors_io import header_of


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--batch", help="a batch file in the tiny-batch.safetensors format")
    parser.add_argument("--float64", action="store_true", help="compute in float64")
    args = parser.parse_args()
    dtype = torch.float64 if args.float64 else torch.float32

    try:
        model, config, metadata = twin.load_checkpoint(args.checkpoint, dtype=dtype)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    header = header_of(args.checkpoint)
    dtypes = sorted({v["dtype"] for k, v in header.items() if k != "__metadata__"})
    n_params = sum(p.numel() for _, p in model.ordered_parameters())
    print(f"{args.checkpoint}: format '{metadata['format']}', {len(header) - 1} tensors "
          f"({', '.join(dtypes)}), {n_params} parameters")
    print("config: " + json.dumps(config))
    others = sorted(k for k in metadata if k not in ("format", "config"))
    for key in others:
        value = metadata[key]
        shown = value if len(value) <= 70 else value[:67] + "..."
        print(f"metadata {key}: {shown}")

    if args.batch:
        try:
            batch, images, lam, stored, batch_meta = twin.load_batch(args.batch)
            with torch.no_grad():
                out = model(batch, images, lam=lam)
        except (OSError, ValueError, KeyError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"batch {args.batch}: {len(batch)} rows, {out['layout'].L} positions, "
              f"{out['n_text_targets']} text targets, {out['n_images']} diffusion images, "
              f"lambda {lam:g}")
        for key in ("loss", "lm", "ddpm"):
            line = f"{key:5s} {out[key].item():.9g}"
            if f"{key}_f64" in batch_meta:  # golden values (for the golden weights)
                golden = float(batch_meta[f"{key}_f64"])
                line += f"  (golden {golden:.9g}, difference {out[key].item() - golden:+.2e})"
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
