#!/bin/bash
# check_distributed.sh: the PyTorch trainer (train_distributed.py) end to end,
# on this CPU, in a few minutes (issue 9). Not part of the CI suite: it needs
# Debian's python3-torch.
#
#   tests/reference/check_distributed.sh [BUILD_DIR]     (default: build)
#
# 1. `transfusion-cli data --export` writes shards of shapes, emoji, WordNet,
#    the chat turns, Fashion-MNIST and a user folder, with the C encoder's
#    token ids; the Python encoder must give the same ids for every text.
#    Python must write the C engine's Fashion-MNIST captions (every phrase
#    and template, for the right class), read the folder as the C engine
#    does (captions equal, pixels within 8 levels), and make every example
#    of both splits of WordNet and of the drawable subjects (the WordNet
#    senses of the clothes, shapes, colours and emoji names, with their
#    held-out "what is a X?") as the C engine does, in the same order.
# 2. Two ranks (torchrun, gloo): DDP's gradient is the mean of the ranks'
#    gradients and the one-process gradient of all their rows as one batch,
#    on batches of the whole mix (multi-turn chat documents among them).
# 3. Two ranks train the tiny preset for a few steps with the image side's
#    options of $RECIPE; transfusion-cli reads the checkpoint (info: every
#    option with its value), draws an image with it and captions that image.
# 4. The C engine reproduces the twin on that checkpoint: a batch from the
#    data mix, written by make_golden.write_batch_file, checked by
#    tests/test-golden.c's first test (logits, ε, losses, every gradient,
#    within its tolerances; the share of tolerance used is printed).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
BUILD=$(cd "${1:-$TOP/build}" && pwd)
PY=/usr/bin/python3            # Debian's, with python3-torch
CLI="$BUILD/app/transfusion-cli"
# Debian's torch 1.13 under Python 3.11 cannot parse torchrun's default
# "--redirects 0" (an IntFlag change); redirecting stdout and teeing it works.
TORCHRUN="$PY -m torch.distributed.run --redirects 1 --tee 1"
TOKENIZER="$TOP/resources/models/default.safetensors"   # a tokenizer the C trainer made
STEPS=${STEPS:-4}
# The image side's options (issue 14), all of them unlike the presets' values
# by default, so that each is trained, saved, opened by C and checked against
# the twin; RECIPE= checks the presets as they are.
RECIPE=${RECIPE---prediction v --t-sampling logit_normal --t-mean -0.5 --t-scale 1.2 --min-snr-gamma 5 --time-conditioning adaln_zero --image-encoder unet --unet-channels 8 --unet-blocks 1 --unet-skips false --image-rope axial}

for f in "$CLI" "$BUILD/tests/test-golden"; do
  [ -x "$f" ] || { echo "check_distributed: $f is missing; build first (meson compile -C $BUILD)"; exit 1; }
done
$PY -c "import torch" 2>/dev/null || { echo "check_distributed: $PY has no torch (apt install python3-torch)"; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/check-distributed-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

echo "== 1. shards and the tokenizer"
# A user folder whose captions test the encoder's corners: a chunk far over
# 64 bytes (the C encoder's other merge path), UTF-8, digits, punctuation.
mkdir folder
$PY - <<'EOF'
import numpy as np
from PIL import Image
captions = [
    "a red square " + "a" * 150 + " and " + "abcabcabc" * 12,
    "café ünïcode – naïve 日本語 emoji 🍕 pizza, 12345 678.9 (parentheses) \"quotes\"",
    "tabs and   spaces: 3 cats;4 dogs!! ?? x-ray don't won't",
]
for i, caption in enumerate(captions):
    w, h = 41 + 17 * i, 30 + 23 * i          # gradients, resampled by other ratios
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), np.full_like(xx, 90)], -1)
    Image.fromarray(rgb.astype(np.uint8)).save(f"folder/image-{i}.png")
    open(f"folder/image-{i}.txt", "w").write(caption)
EOF
"$CLI" data --export shards --count 400 --data shapes,emoji,wordnet,chat,"$WORK/folder" \
  --tokenizer "$TOKENIZER"
# enough that every phrase and template of every class turns up
"$CLI" data --export shards --count 2000 --data fashion --tokenizer "$TOKENIZER"
$PY "$HERE/check_distributed.py" tokenizer shards/*.safetensors
$PY "$HERE/check_distributed.py" fashion shards/fashion.safetensors
$PY "$HERE/check_distributed.py" folder folder shards/folder-folder.safetensors
for source in wordnet subjects; do
  for split in train heldout; do
    "$CLI" data --export "$source-$split" --data "$source" --split "$split" --count 1000000
    $PY "$HERE/check_distributed.py" wordnet "$source-$split/$source.safetensors" --split "$split"
  done
done

DATA=fashion,shapes,emoji,wordnet,subjects,chat,$WORK/folder

echo "== 2. the ranks' gradients are averaged"
$TORCHRUN --nproc_per_node=2 "$HERE/check_distributed.py" grads --tokenizer "$TOKENIZER" \
  --data "$DATA" --shards shards $RECIPE 2>&1 | grep -v "find_unused_parameters\|InitGoogleLogging"

echo "== 3. two ranks train the tiny preset; transfusion-cli opens the model"
$TORCHRUN --nproc_per_node=2 "$HERE/train_distributed.py" --tokenizer "$TOKENIZER" \
  --preset tiny --data "$DATA" --shards shards --steps "$STEPS" --batch 2 --warmup 1 \
  --out model.safetensors $RECIPE 2>&1 | grep -v "find_unused_parameters\|InitGoogleLogging"
"$CLI" info model.safetensors
set -- $RECIPE   # every option given is in the model's config, with its value
while [ $# -ge 2 ]; do
  key=${1#--}; key=${key//-/_}
  got=$("$CLI" info model.safetensors | awk -v k="$key" '$1 == k { print $2 }')
  [ "$got" = "$2" ] || { echo "check_distributed: the model's $key is '$got', not '$2'"; exit 1; }
  shift 2
done
"$CLI" generate --model model.safetensors --prompt "a sneaker" --steps 8 --seed 1 --out drawn.png
"$CLI" caption --model model.safetensors --image drawn.png --temperature 0 --max-tokens 8

echo "== 4. the C engine reproduces the twin on that model"
$PY "$HERE/check_distributed.py" golden --model model.safetensors --tokenizer "$TOKENIZER" \
  --data "$DATA" --shards shards --batch 2 --seed 5 --out batch.safetensors
TF_GOLDEN_MODEL="$WORK/model.safetensors" TF_GOLDEN_BATCH="$WORK/batch.safetensors" \
  G_TEST_SRCDIR="$TOP/tests" "$BUILD/tests/test-golden" --verbose -p /golden/forward-backward \
  -s /golden/forward-backward/v -s /golden/forward-backward/x \
  -s /golden/forward-backward/adaln -s /golden/forward-backward/unet \
  -s /golden/forward-backward/unet-noskip -s /golden/forward-backward/conv \
  -s /golden/forward-backward/axial   # the bundled recipes'

echo "check_distributed: all passed"
