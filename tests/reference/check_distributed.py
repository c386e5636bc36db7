"""check_distributed.py: the checks behind check_distributed.sh (issue 9).

    check_distributed.py tokenizer SHARD.safetensors...
        Our Python encoder against the C encoder: every text in shards written
        by `transfusion-cli data --export DIR --tokenizer MODEL` carries the C
        ids; encode() must give the same ids and decode() the same text.

    torchrun --nproc_per_node=2 check_distributed.py grads --tokenizer MODEL --data ... [--shards DIR]
        The ranks' gradients are averaged: in float64, each rank draws its own
        batch from the data mix and runs it through DDP; then (1) every rank
        holds the same gradient, (2) it is the mean of the ranks' own
        gradients of their shares of the loss, (3) it is the gradient one
        process computes for all ranks' rows as one batch, and (4) it differs
        from a rank's gradient of its own batch alone (so (1)-(3) could fail).

    check_distributed.py folder DIR SHARD.safetensors [--split heldout]
        training_data.py's reading of a user folder against the C engine's
        export of the same folder: the same images and captions, in order,
        and pixels within a few levels (PIL's area average is not the C one).

    check_distributed.py fashion SHARD.safetensors
        training_data.py's Fashion-MNIST captions against the C engine's: every
        caption of the exported shard is one Python writes for its label, and
        every phrase and template Python has is used (given enough examples).

    check_distributed.py wordnet SHARD.safetensors [--split heldout]
        training_data.py's WordNet against the C engine's: SHARD is a whole
        split of the wordnet or the subjects source exported (`data --export
        DIR --data wordnet --split S --count 1000000`); every example must
        be one Python can make at the same index, and the counts equal.

    check_distributed.py golden --model M --tokenizer MODEL --data ... --out BATCH
        A batch from the data mix, run through the twin in float64 on the
        model M, written as a golden batch file (make_golden.write_batch_file)
        for tests/test-golden.c: TF_GOLDEN_MODEL=M TF_GOLDEN_BATCH=BATCH.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import make_golden                            # noqa: E402
import training_data                          # noqa: E402
import twin                                   # noqa: E402
import train_distributed as td                # noqa: E402
from safetensors_io import read_safetensors   # noqa: E402
from tokenizer import Tokenizer               # noqa: E402

# float64 throughout: sums in another order differ by ~1e-16 relative.
GRAD_RTOL = 1e-9


def check_tokenizer(paths):
    n = bad = 0
    longest = 0
    tok = None
    for path in paths:
        _, meta = read_safetensors(path)
        if "tokenizer" not in meta:
            raise SystemExit(f"{path}: no tokenizer (export with --tokenizer MODEL)")
        if tok is None or meta["tokenizer"] != tok.to_json():
            tok = Tokenizer.from_json(meta["tokenizer"], what=path)
            if tok.to_json() != meta["tokenizer"]:
                print(f"{path}: the tokenizer JSON does not round-trip through tokenizer.py")
                bad += 1
        for e in json.loads(meta["examples"]):
            for key in ("caption", "prompt", "text"):
                if key not in e:
                    continue
                n += 1
                longest = max(longest, len(e[key].encode()))
                ids = tok.encode(e[key])
                if ids != e[key + "_ids"] or tok.decode(ids) != e[key]:
                    bad += 1
                    if bad <= 5:
                        print(f"{path}: {e[key]!r}\n  python {ids}\n  C      {e[key + '_ids']}")
    print(f"tokenizer: {n - bad} of {n} texts encode to the C encoder's ids "
          f"(longest {longest} bytes)")
    return bad == 0 and n > 0


def check_folder(directory, shard, split, max_levels):
    """Python's reading of a user folder against the C engine's export of it:
    the same captions in the same order, pixels within @max_levels of 255."""
    ours = training_data.FolderSource(directory, split, 32, 3)
    theirs = training_data.ShardSource(shard, 32, 3)
    ok = len(ours) == len(theirs)
    worst = 0.0
    for i in range(min(len(ours), len(theirs))):
        a, b = ours.get(i, None), theirs.get(i, None)
        if a["caption"] != b["caption"]:
            print(f"folder: image {i}: caption {a['caption']!r}, the C engine's {b['caption']!r}")
            ok = False
        worst = max(worst, float(np.abs(a["pixels"] - b["pixels"]).max()) * 127.5)
    ok &= worst <= max_levels
    print(f"folder: {len(ours)} {split} images here, {len(theirs)} from the C engine, captions "
          f"{'equal' if ok else 'DIFFER'}, pixels within {worst:.1f} of 255 levels "
          f"(allowed {max_levels})")
    return ok


def check_fashion(shard):
    """The C engine's Fashion-MNIST captions are ones training_data.py writes
    for the same label, and (with a few hundred examples) use every phrase
    and template it knows."""
    _, meta = read_safetensors(shard)
    theirs = json.loads(meta["examples"])
    formats = {}   # caption → (label, phrase, template)
    for label, phrases in enumerate(training_data.FASHION_PHRASES):
        for phrase in phrases:
            for template in training_data.FASHION_TEMPLATES:
                formats[template.format(phrase)] = (label, phrase, template)
    bad, phrases, templates = 0, set(), set()
    for e in theirs:
        label, phrase, template = formats.get(e["caption"], (None, None, None))
        if label != e["label"]:
            bad += 1
            if bad <= 3:
                print(f"fashion: the C engine's caption {e['caption']!r} (label {e['label']}) "
                      f"is not one Python writes for that label")
        phrases.add(phrase)
        templates.add(template)
    n_phrases = sum(len(p) for p in training_data.FASHION_PHRASES)
    n_templates = len(training_data.FASHION_TEMPLATES)
    print(f"fashion: {len(theirs) - bad} of {len(theirs)} captions from the C engine are "
          f"Python's; they use {len(phrases - {None})} of its {n_phrases} phrases and "
          f"{len(templates - {None})} of its {n_templates} templates")
    return bad == 0 and len(phrases - {None}) == n_phrases and len(templates - {None}) == n_templates


def check_wordnet(shard, split):
    """Python's WordNet (or subjects) source against the C engine's, example
    by example: the C export of the whole split (in index order) must hold,
    at every index, one of the renderings Python allows there (the phrasing
    is the rng's)."""
    tensors, meta = read_safetensors(shard)
    name = meta.get("source", "wordnet")
    if name not in ("wordnet", "subjects") or meta.get("split", split) != split:
        raise SystemExit(f"{shard}: the {meta.get('split')} split of {name}, not WordNet's "
                         f"or the subjects' {split} split")
    ours = training_data.WordNetSource(split, subjects=name == "subjects")
    theirs = json.loads(meta["examples"])
    bad = 0 if len(ours) == len(theirs) else 1
    for i, e in enumerate(theirs[:len(ours)]):
        n_prompts, n_others = ours.choices(i)
        options = {(x["prompt"], x["text"], x["subject"])
                   for x in (ours.render(i, k, j) for k in range(n_prompts) for j in range(n_others))}
        if (e.get("prompt"), e["text"], e["subject"]) not in options:
            bad += 1
            if bad <= 3:
                print(f"{name}: example {i}: the C engine's {e}, here e.g. {sorted(options)[0]}")
    print(f"{name}: {len(ours)} {split} examples here, {len(theirs)} from the C engine, "
          f"{len(theirs) - bad} the same")
    return bad == 0


def concatenate(batches):
    """Rows of several (batch, images) as one batch, images renumbered."""
    rows, images = [], {}
    for batch, imgs in batches:
        offset = len(images)
        for row in batch:
            new_row = []
            for seg in row:
                seg = dict(seg)
                if "image" in seg:
                    images[seg["image"] + offset] = imgs[seg["image"]]
                    seg["image"] += offset
                new_row.append(seg)
            rows.append(new_row)
    return rows, images


def flat_grad(model):
    return torch.cat([p.grad.reshape(-1).clone() for _, p in model.ordered_parameters()])


def check_grads(args):
    rank, world, _, device = td.setup()
    if world < 2:
        raise SystemExit("grads: run under torchrun with --nproc_per_node=2 or more")
    tok = Tokenizer.from_checkpoint(args.tokenizer)
    config = td.make_config(args, tok)
    mix = make_mix(args, tok, config)
    rng = np.random.default_rng([args.seed, rank])
    batch, images, _ = mix.build_batch(rng, args.batch)

    def new_model():
        return twin.init_parameters(twin.Transfusion(config), seed=args.seed).to(torch.float64)

    # The gradient DDP leaves on this rank.
    model = new_model()
    ddp = DDP(model, find_unused_parameters=True)
    out = ddp(batch, images, lam=args.lam)
    share, (loss, _, _) = td.distributed_loss(out, args.lam, world)
    share.backward()
    averaged = flat_grad(model)

    # This rank's own gradients, without DDP: of its share, and of its batch alone.
    plain = new_model()
    out = plain(batch, images, lam=args.lam)
    td.distributed_loss(out, args.lam, world)[0].backward()
    own_share = flat_grad(plain)
    plain.zero_grad()
    plain(batch, images, lam=args.lam)["loss"].backward()
    own_batch = flat_grad(plain)

    everyone = [torch.empty_like(averaged) for _ in range(world)]
    dist.all_gather(everyone, averaged)
    shares = [torch.empty_like(own_share) for _ in range(world)]
    dist.all_gather(shares, own_share)
    batches = [None] * world
    dist.all_gather_object(batches, (batch, images))

    ok = True
    if rank == 0:
        scale = float(averaged.abs().max())

        def report(what, diff, want_small=True):
            nonlocal ok
            passed = (diff <= GRAD_RTOL * scale) == want_small
            ok &= passed
            print(f"grads: {what}: max |difference| {diff:.3g} "
                  f"({'≤' if want_small else '>'} {GRAD_RTOL:g}·max|g| = {GRAD_RTOL * scale:.3g}) "
                  f"{'ok' if passed else 'FAILED'}")

        report("ranks hold the same gradient",
               max(float((g - averaged).abs().max()) for g in everyone))
        report("it is the mean of the ranks' own gradients",
               float((torch.stack(shares).mean(0) - averaged).abs().max()))
        whole = new_model()
        rows, all_images = concatenate(batches)
        out = whole(rows, all_images, lam=args.lam)
        out["loss"].backward()
        report(f"it is the one-process gradient of all {len(rows)} rows as one batch "
               f"(loss {float(out['loss']):.6f}, ranks' {loss:.6f})",
               float((flat_grad(whole) - averaged).abs().max()))
        report("rank 0's gradient of its own batch alone differs (the checks can fail)",
               float((own_batch - averaged).abs().max()), want_small=False)
        print(f"grads: {averaged.numel()} gradient values, {world} ranks, "
              f"{sum(len(b[0]) for b in batches)} rows")
    flag = torch.tensor([1 if ok else 0])
    dist.broadcast(flag, 0)
    dist.destroy_process_group()
    return bool(flag.item())


def make_mix(args, tok, config):
    names = args.data.split(",")
    sources = [training_data.open_source(n, training_data.TRAIN, config["image_size"],
                                         config["image_channels"], args.shards, tok)
               for n in names]
    return training_data.DataMix(sources, [1.0] * len(names), tok, config)


def write_golden(args):
    tok = Tokenizer.from_checkpoint(args.tokenizer)
    _, config, meta = twin.load_checkpoint(args.model)
    if Tokenizer.from_checkpoint(args.model).to_json() != tok.to_json():
        raise SystemExit(f"{args.model}: its tokenizer is not the one in {args.tokenizer}")
    mix = make_mix(args, tok, config)
    batch, images, _ = mix.build_batch(np.random.default_rng(args.seed), args.batch)
    torch.set_num_threads(1)
    out, layout = make_golden.write_batch_file(args.model, args.out, batch, images, lam=args.lam)
    print(f"golden: wrote {args.out}: {layout.B} rows of up to {layout.L} positions, "
          f"{out['n_text_targets']} text targets, {out['n_images']} diffusion images, "
          f"loss {float(out['loss']):.6f}")
    return True


def main():
    a = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = a.add_subparsers(dest="command", required=True)
    t = sub.add_parser("tokenizer")
    t.add_argument("shards", nargs="+")
    fa = sub.add_parser("fashion")
    fa.add_argument("shard")
    w = sub.add_parser("wordnet")
    w.add_argument("shard")
    w.add_argument("--split", default=training_data.TRAIN)
    f = sub.add_parser("folder")
    f.add_argument("directory")
    f.add_argument("shard")
    f.add_argument("--split", default=training_data.TRAIN)
    f.add_argument("--max-levels", type=float, default=8)
    for name in ("grads", "golden"):
        p = sub.add_parser(name)
        p.add_argument("--tokenizer", required=True)
        p.add_argument("--data", default="fashion")
        p.add_argument("--shards")
        p.add_argument("--batch", type=int, default=2)
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--lambda", dest="lam", type=float, default=5.0)
        if name == "grads":
            p.add_argument("--preset", default="tiny", choices=sorted(td.PRESETS))
            for key in ("d_model", "n_layers", "n_heads", "max_seq_len"):
                p.add_argument("--" + key.replace("_", "-"), dest=key, type=int)
            td.add_recipe_arguments(p)
        else:
            p.add_argument("--model", required=True)
            p.add_argument("--out", required=True)
    args = a.parse_args()
    ok = {"tokenizer": lambda: check_tokenizer(args.shards),
          "fashion": lambda: check_fashion(args.shard),
          "wordnet": lambda: check_wordnet(args.shard, args.split),
          "folder": lambda: check_folder(args.directory, args.shard, args.split, args.max_levels),
          "grads": lambda: check_grads(args),
          "golden": lambda: write_golden(args)}[args.command]()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
