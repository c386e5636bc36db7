"""training_data.py: the training data and the data mix of engine/tf-train.c, in Python.

Sources (SPEC §5), by the names `transfusion-cli train --data` takes:
  fashion           Fashion-MNIST read from the Debian package's IDX files
                    (/usr/share/datasets/fashion-mnist), centred on the image,
                    captions from the same templates as engine/tf-data.c
  DIR (a folder)    a user folder: PNG images with same-named .txt captions, fitted
                    into a white square and area-resampled as tf_image_to_model
                    does (PIL; the same convention, not bit for bit)
  wordnet           WordNet (/usr/share/wordnet/data.*, Debian's wordnet-base)
                    parsed as engine/tf-data.c does: definitions, usage examples
                    and synonyms as questions and answers
  FILE.safetensors  a shard written by `transfusion-cli data --export DIR`:
                    the C engine's own examples (pixels and captions), which is
                    how shapes (Cairo) and emoji (Noto) get here
  shapes, emoji     the shard NAME.safetensors in --shards DIR

The mix (build_document, build_batch) is engine/tf-train.c's build_doc and
build_batch: caption first, or image first with t ≤ T/2 (--image-first),
the caption dropped for guidance (--cfg-drop), the chat template for a
fraction (--chat: "draw X" → image, image + "what is this?" → caption,
question → answer), documents packed into rows of at most max_seq_len, a
document that does not fit skipped and a row closed after eight misses.
Random draws come from a numpy Generator, so the stream is the same kind
as the C trainer's, not the same numbers.
"""

import gzip
import json
import os
import math
import re
import struct

import numpy as np

from safetensors_io import read_safetensors

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
SHARD_FORMAT = "transfusion-data"
TRAIN, HELDOUT = "train", "heldout"

# engine/tf-train.c
DRAW_PHRASES = ("draw ", "draw me ", "make a picture of ", "show me ", "paint ",
                "create an image of ")
CAPTION_QUESTIONS = ("what is this?", "what is in this picture?", "describe this image.",
                     "caption this.", "what do you see?")

# engine/tf-data.c
FASHION_SUBJECTS = ("t-shirt", "trousers", "pullover", "dress", "coat", "sandal", "shirt",
                    "sneaker", "bag", "ankle boot")
FASHION_PHRASES = (
    ("a t-shirt", "a tee", "a top", "a tee shirt"),
    ("a pair of trousers", "trousers", "a pair of pants", "pants"),
    ("a pullover", "a sweater", "a jumper"),
    ("a dress", "a summer dress", "a frock"),
    ("a coat", "a jacket", "a winter coat"),
    ("a sandal", "an open sandal", "a summer sandal"),
    ("a shirt", "a button-up shirt", "a blouse"),
    ("a sneaker", "a trainer", "a running shoe", "a sports shoe"),
    ("a bag", "a handbag", "a purse", "a tote bag"),
    ("an ankle boot", "a boot", "a short boot"),
)
FASHION_TEMPLATES = (
    "{}", "a photo of {}", "a picture of {}", "an image of {}", "{} on a black background",
    "a grayscale photo of {}", "a black and white picture of {}", "a product photo of {}",
    "{}, white on black", "a small low-resolution image of {}",
)


def image_example(pixels, caption):
    return {"kind": "image", "pixels": pixels, "caption": caption}


def text_example(prompt, text):
    return {"kind": "text", "prompt": prompt, "text": text}


# ---- Sources ---------------------------------------------------------------------

def read_idx_gz(path, n_dims):
    """An IDX file of unsigned bytes (gzip) as a numpy array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 + 4 * n_dims or data[:4] != bytes([0, 0, 8, n_dims]):
        raise ValueError(f"{path}: not an IDX file of {n_dims}-dimensional unsigned bytes")
    dims = struct.unpack(">" + "I" * n_dims, data[4:4 + 4 * n_dims])
    body = data[4 + 4 * n_dims:]
    if len(body) != int(np.prod(dims)):
        raise ValueError(f"{path}: {len(body)} data bytes, the header announces {int(np.prod(dims))}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


class FashionSource:
    """Fashion-MNIST: the train split reads only train-*, the held-out split only t10k-*."""

    def __init__(self, split, image_size, channels, directory=FASHION_DIR):
        prefix = "train" if split == TRAIN else "t10k"
        self.images = read_idx_gz(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"), 3)
        self.labels = read_idx_gz(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"), 1)
        if len(self.images) != len(self.labels) or self.labels.max() >= len(FASHION_PHRASES):
            raise ValueError(f"{directory}: {prefix} images and labels do not match")
        rows, cols = self.images.shape[1:]
        if rows > image_size or cols > image_size:
            raise ValueError(f"fashion: {rows}×{cols} images do not fit in {image_size}")
        self.name, self.size, self.channels = "fashion", image_size, channels

    def __len__(self):
        return len(self.labels)

    def get(self, index, rng):
        rows, cols = self.images.shape[1:]
        plane = np.full((self.size, self.size), -1.0, dtype=np.float32)  # black, as the images
        oy, ox = (self.size - rows) // 2, (self.size - cols) // 2
        plane[oy:oy + rows, ox:ox + cols] = self.images[index] / np.float32(127.5) - np.float32(1)
        label = int(self.labels[index])
        phrases = FASHION_PHRASES[label]
        phrase = phrases[rng.integers(len(phrases))]
        template = FASHION_TEMPLATES[rng.integers(len(FASHION_TEMPLATES))]
        pixels = np.repeat(plane[:, :, None], self.channels, axis=2)
        return image_example(pixels, template.format(phrase))


def fit_to_model(image, size):
    """PIL image -> [size, size, 3] float32 in [-1, 1], as tf_image_to_model:
    over white where transparent; a larger image shrunk (aspect kept, area
    averaging) to fit, a smaller one at its own size; centred on the median
    colour of its outermost pixels."""
    from PIL import Image
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    w, h = rgb.size
    long_side = max(w, h)
    fw, fh = w, h
    if long_side > size:
        fw = min(max(round(w * size / long_side), 1), size)
        fh = min(max(round(h * size / long_side), 1), size)
        rgb = rgb.resize((fw, fh), Image.BOX)
    fitted = np.asarray(rgb, dtype=np.float32) / np.float32(255)
    ring = np.ones((fh, fw), dtype=bool)
    if fh > 1 and fw > 1:
        ring[1:-1, 1:-1] = False
    fill = np.median(fitted[ring], axis=0)
    square = np.empty((size, size, 3), dtype=np.float32)
    square[:, :] = fill
    ox, oy = (size - fw) // 2, (size - fh) // 2
    square[oy:oy + fh, ox:ox + fw] = fitted
    return np.clip(square * np.float32(2) - np.float32(1), -1, 1)


FOLDER_HELDOUT_EVERY = 20
FOLDER_MAX_CAPTION = 500
_ASCII_SPACE = re.compile(rb"[ \t\n\v\f\r]+")


def read_caption(path):
    """NAME.txt as engine/tf-data.c reads it: UTF-8 (a byte-order mark
    skipped), up to a NUL, ASCII white space collapsed to single spaces, at
    most 500 bytes cut at a character boundary, stripped; None when empty."""
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    data.decode("utf-8")                       # raises on bad UTF-8, as the C refuses it
    data = _ASCII_SPACE.sub(b" ", data.split(b"\0")[0]).lstrip(b" ")
    if len(data) > FOLDER_MAX_CAPTION:
        cut = FOLDER_MAX_CAPTION
        while cut > 0 and data[cut] & 0xC0 == 0x80:
            cut -= 1
        data = data[:cut]
    text = data.strip(b" ").decode("utf-8")
    return text or None


class FolderSource:
    """PNG images with same-named .txt captions, as engine/tf-data.c takes
    them: other files are skipped with a message naming them, and the
    held-out split is every 20th usable image by sorted name."""

    def __init__(self, directory, split, image_size, channels):
        from PIL import Image
        self.items = []
        n_good = 0
        for n in sorted(os.listdir(directory)):
            path = os.path.join(directory, n)
            if n.startswith(".") or n.endswith(".txt") or not os.path.isfile(path):
                continue
            try:
                with Image.open(path) as im:
                    if im.format != "PNG":
                        raise ValueError(f"{im.format} images are not read, only PNG")
                    caption = read_caption(os.path.splitext(path)[0] + ".txt")
                    if caption is None:
                        raise ValueError("the caption is empty")
                    pixels = fit_to_model(im, image_size)
            except (OSError, UnicodeDecodeError, ValueError) as e:
                print(f"{path}: skipped: {e}")
                continue
            heldout = n_good % FOLDER_HELDOUT_EVERY == FOLDER_HELDOUT_EVERY - 1
            n_good += 1
            if heldout != (split == HELDOUT):
                continue
            if channels == 1:
                pixels = pixels.mean(axis=2, keepdims=True)
            self.items.append(image_example(pixels, caption))
        if not self.items:
            raise ValueError(f"{directory}: no usable PNG image with a .txt caption")
        self.name = directory

    def __len__(self):
        return len(self.items)

    def get(self, index, rng):
        return self.items[index]


WORDNET_DIR = "/usr/share/wordnet"
WORDNET_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
WORDNET_MAX_GLOSS = 300
WORDNET_HELDOUT_EVERY = 50
WORDNET_MAX_USAGES = 3
WORDNET_MAX_WORDS = 255
WORDNET_DEFINITION, WORDNET_USAGE, WORDNET_SYNONYM = range(3)
_WORDNET_PROMPTS = {
    "n": ("what is {}?", "define {}", "what does {} mean?", "what is the meaning of {}?",
          "what's {}?", "tell me what {} is"),
    "v": ("what does it mean to {}?", "define {}", "what does {} mean?",
          "what is the meaning of the verb {}?", "what is it to {}?"),
    "a": ("what does {} mean?", "define {}", "what is the meaning of {}?",
          "what does the word {} mean?"),
    WORDNET_USAGE: ("use {} in a sentence", "give an example of {} in a sentence",
                    "how do you use {}?", "write a sentence with {}"),
    WORDNET_SYNONYM: ("what is another word for {}?", "give me a synonym of {}",
                      "what else can {} be called?", "what is a synonym for {}?"),
}
_COUNTABLE_STARTS = ("a ", "an ", "any ", "one ", "something", "someone", "somebody",
                     "anything", "anyone")
_C_SPACE = " \t\n\v\f\r"


def _definition_key(pos):
    """Nouns and verbs have their own questions; adjectives and adverbs share."""
    return pos if pos in ("n", "v") else "a"


def stable_hash(data):
    """FNV-1a over bytes, as engine/tf-data.c's stable_hash."""
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def indefinite_article(word):
    w = word.lower()
    if w.startswith(("hour", "honest", "honor", "honour", "heir")):
        return "an"
    if w.startswith(("uni", "use", "usu", "usa", "ure", "uro", "eu", "one", "once", "ewe")):
        return "a"
    return "an" if word[:1] in tuple("aeiouAEIOU") else "a"


def sentence_uses(sentence, word):
    """Does @sentence use @word, or its stem ("sigh" in "She sighed")?"""
    n = len(word)
    if n > 3 and word[-1] in "ey":
        n -= 1
    lower, stem = sentence.lower(), word[:n].lower()
    p = lower.find(stem)
    while p != -1:
        if p == 0 or not lower[p - 1].isascii() or not lower[p - 1].isalnum():
            return True
        p = lower.find(stem, p + 1)
    return False


class WordNetSource:
    """WordNet glosses, examples and synonyms as questions and answers, parsed
    as engine/tf-data.c parses them (the same synsets, texts and held-out
    headwords, in the same order)."""

    def __init__(self, split, directory=WORDNET_DIR):
        self.synsets = []   # (pos, words, definition, usages, article)
        for name in WORDNET_FILES:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                for line_no, line in enumerate(f.read().split(b"\n"), 1):
                    if line and not line.startswith(b"  "):
                        self._parse(line, path, line_no)
        self.items = []
        for s, (pos, words, definition, usages, article) in enumerate(self.synsets):
            if (stable_hash(words[0].lower().encode()) % WORDNET_HELDOUT_EVERY == 0) != (split == HELDOUT):
                continue
            self.items.append((s, WORDNET_DEFINITION, 0))
            self.items += [(s, WORDNET_USAGE, u) for u in range(len(usages))]
            if self._others(words):
                self.items.append((s, WORDNET_SYNONYM, 0))
        if not self.items:
            raise ValueError(f"{directory}: no WordNet synsets found in data.*")
        self.name = "wordnet"

    @staticmethod
    def _others(words):
        return [w for w in words[1:] if w.lower() != words[0].lower()]

    def _parse(self, raw, path, line_no):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            line = raw.decode("latin-1")
        bar = line.find(" | ")
        if bar < 0:
            raise ValueError(f"{path}: line {line_no}: no ' | ' before the gloss")
        gloss = line[bar + 3:].strip(_C_SPACE)
        fields = line[:bar].split(" ")
        try:
            w_cnt = int(fields[3], 16) if len(fields) >= 4 else 0
        except ValueError:
            w_cnt = 0
        if (len(fields) < 4 or len(fields[2]) != 1 or fields[2] not in "nvasr" or w_cnt == 0
                or 4 + 2 * w_cnt > len(fields)):
            raise ValueError(f"{path}: line {line_no}: expected 'offset lex_filenum ss_type "
                             f"w_cnt word lex_id ...'")
        if len(gloss.encode("utf-8")) > WORDNET_MAX_GLOSS or not gloss:
            return
        pos = "a" if fields[2] == "s" else fields[2]
        words = []
        for w in range(min(w_cnt, WORDNET_MAX_WORDS)):
            word = fields[4 + 2 * w].split("(")[0].replace("_", " ")   # "able(a)" → "able"
            if word:
                words.append(word)
        if not words:
            return
        # Definition parts and "quoted examples", split at semicolons outside quotes.
        definition, usages = "", []
        in_quote, start = False, 0
        for i in range(len(gloss) + 1):
            if i < len(gloss):
                if gloss[i] == '"':
                    in_quote = not in_quote
                if gloss[i] != ";" or in_quote:
                    continue
            part = gloss[start:i].strip(_C_SPACE).replace("`", "'")
            start = i + 1
            if part.startswith('"'):
                close = part.find('"', 1)
                sentence = (part[1:close] if close >= 0 else part[1:]).strip(_C_SPACE)
                if sentence and len(usages) < WORDNET_MAX_USAGES and sentence_uses(sentence, words[0]):
                    usages.append(sentence)
            elif part:
                if not definition and part[0] == "(":
                    close = part.find(")")
                    if close >= 0 and close + 1 < len(part):
                        part = part[close + 1:].strip(_C_SPACE)
                if definition:
                    definition += "; "
                definition += part
        definition = definition.rstrip(".")
        if not definition:
            return
        article = (pos == "n" and not ("A" <= words[0][0] <= "Z")
                   and definition.startswith(_COUNTABLE_STARTS))
        self.synsets.append((pos, words, definition, usages, article))

    def __len__(self):
        return len(self.items)

    def choices(self, index):
        """(number of prompt phrasings, number of synonyms to pick from)."""
        s, kind, _ = self.items[index]
        pos, words = self.synsets[s][0], self.synsets[s][1]
        prompts = _WORDNET_PROMPTS[_definition_key(pos) if kind == WORDNET_DEFINITION else kind]
        return len(prompts), len(self._others(words)) if kind == WORDNET_SYNONYM else 1

    def render(self, index, k, j):
        """Example @index with prompt phrasing @k and synonym @j."""
        s, kind, sub = self.items[index]
        pos, words, definition, usages, article = self.synsets[s]
        word = words[0]
        term = f"{indefinite_article(word)} {word}" if article else word
        if kind == WORDNET_DEFINITION:
            prompt = _WORDNET_PROMPTS[_definition_key(pos)][k]
            if pos == "n":
                # "define a dog" reads oddly: the bare word after verbs.
                ex = text_example(prompt.format(word if k in (1, 2, 3) else term),
                                  f"{term} is {definition}.")
            elif pos == "v":
                ex = text_example(prompt.format(word), f"to {word} is to {definition}.")
            else:
                ex = text_example(prompt.format(word), f"{word} means {definition}.")
        elif kind == WORDNET_USAGE:
            ex = text_example(_WORDNET_PROMPTS[WORDNET_USAGE][k].format(word), usages[sub])
        else:
            ex = text_example(_WORDNET_PROMPTS[WORDNET_SYNONYM][k].format(word),
                              f"another word for {word} is {self._others(words)[j]}.")
        ex["subject"] = word
        return ex

    def get(self, index, rng):
        n_prompts, n_others = self.choices(index)
        k = int(rng.integers(n_prompts))
        j = int(rng.integers(n_others)) if self.items[index][1] == WORDNET_SYNONYM else 0
        return self.render(index, k, j)


class ShardSource:
    """A file written by `transfusion-cli data --export`."""

    def __init__(self, path, image_size, channels, tokenizer=None):
        tensors, meta = read_safetensors(path)
        if meta.get("format") != SHARD_FORMAT:
            raise ValueError(f"{path}: __metadata__ 'format' is {meta.get('format')!r}, "
                             f"expected '{SHARD_FORMAT}' (write it with "
                             f"transfusion-cli data --export DIR)")
        if (int(meta["image_size"]), int(meta["image_channels"])) != (image_size, channels):
            raise ValueError(f"{path}: images are {meta['image_size']}×{meta['image_size']}×"
                             f"{meta['image_channels']}, the model takes "
                             f"{image_size}×{image_size}×{channels}")
        self.examples = json.loads(meta["examples"])
        self.pixels = tensors.get("pixels")
        if not self.examples:
            raise ValueError(f"{path}: no examples")
        # The C encoder's ids can stand in for ours when the tokenizer is the same.
        self.ids_usable = tokenizer is not None and meta.get("tokenizer") == tokenizer.to_json()
        self.name = meta.get("source", path)

    def __len__(self):
        return len(self.examples)

    def get(self, index, rng):
        e = self.examples[index]
        if "image" in e:
            ex = image_example(self.pixels[e["image"]], e.get("caption", ""))
        else:
            ex = text_example(e.get("prompt"), e.get("text", ""))
        if self.ids_usable:
            ex["ids"] = {k: e[k + "_ids"] for k in ("caption", "prompt", "text") if k + "_ids" in e}
        return ex


def open_source(name, split, image_size, channels, shards_dir=None, tokenizer=None):
    """A source by the name `transfusion-cli train --data` takes (see the top)."""
    if name == "fashion":
        return FashionSource(split, image_size, channels)
    if name == "wordnet":
        return WordNetSource(split)
    if name.endswith(".safetensors"):
        return ShardSource(name, image_size, channels, tokenizer)
    if name in ("shapes", "emoji"):
        path = os.path.join(shards_dir or ".", f"{name}.safetensors")
        if not os.path.exists(path):
            raise ValueError(f"{name}: no shard {path}; write one with "
                             f"transfusion-cli data --export DIR --data {name} --count N "
                             f"[--split {split}] and pass --shards DIR")
        return ShardSource(path, image_size, channels, tokenizer)
    if os.path.isdir(name):
        return FolderSource(name, split, image_size, channels)
    raise ValueError(f"{name}: not a source (fashion, shapes, emoji, wordnet, a .safetensors "
                     f"shard or a folder)")


# ---- The mix -------------------------------------------------------------------------

def draw_t(config, rng, t_lo, t_hi):
    """A noise level for generating an image, as the config's t_sampling
    draws it (engine/tf-diffusion.c: tf_diffusion_sample_t)."""
    if config.get("t_sampling", "uniform") == "logit_normal":
        n = rng.standard_normal()
        u = 1.0 / (1.0 + math.exp(-(config["t_mean"] + config["t_scale"] * n)))
        return min(max(int(math.ceil(u * config["diffusion_steps"])), t_lo), t_hi)
    return int(t_lo + rng.integers(t_hi - t_lo + 1))


class DataMix:
    """Documents and packed batches in the twin's batch format (twin.py)."""

    def __init__(self, sources, weights, tokenizer, config, image_first=0.2, cfg_drop=0.1,
                 chat_fraction=0.25):
        total = float(sum(weights))
        if not total > 0 or any(w < 0 for w in weights) or len(weights) != len(sources):
            raise ValueError("the data weights must be ≥ 0, one per source, not all zero")
        self.sources = sources
        self.cum_weights = np.cumsum(weights) / total
        self.tok = tokenizer
        self.config = config
        self.image_first, self.cfg_drop, self.chat_fraction = image_first, cfg_drop, chat_fraction
        self.n_patches = (config["image_size"] // config["patch_size"]) ** 2

    def draw_example(self, rng):
        u = rng.random()
        s = 0
        while s + 1 < len(self.sources) and u >= self.cum_weights[s]:
            s += 1
        source = self.sources[s]
        return source.get(int(rng.integers(len(source))), rng)

    def _ids(self, ex, key, text):
        cached = ex.get("ids", {}).get(key) if key else None
        return list(cached) if cached is not None else self.tok.encode(text)

    def build_document(self, ex, rng):
        """(segments, images, length): one document of the mix for @ex; images
        are (pixels, noise) in segment order."""
        c, tok = self.config, self.tok
        T = c["diffusion_steps"]
        max_caption = c["max_seq_len"] // 4
        chat = rng.random() < self.chat_fraction
        segs, images = [], []
        length = 0

        def text(ids):
            nonlocal length
            if not ids:
                return
            if segs and "text" in segs[-1]:
                segs[-1]["text"] += ids
            else:
                segs.append({"text": list(ids)})
            length += len(ids)

        def special(name):
            text([tok.special(name)])

        def string(s, max_tokens, key=None):
            if s:
                text(self._ids(ex, key, s)[:max(max_tokens, 0)])

        def image(t_lo, t_hi, generating):
            nonlocal length
            t = draw_t(c, rng, t_lo, t_hi) if generating else int(t_lo + rng.integers(t_hi - t_lo + 1))
            noise = rng.standard_normal(np.shape(ex["pixels"])).astype(np.float32)
            images.append((ex["pixels"], noise))
            segs.append({"image": None, "t": t, "diffusion_loss": True})
            length += self.n_patches

        special("<|bos|>")
        if ex["kind"] == "image":
            if chat and rng.random() < 0.5:
                phrase = DRAW_PHRASES[rng.integers(len(DRAW_PHRASES))]   # "draw X" → image
                special("<|user|>")
                string(phrase + ex["caption"], max_caption)
                special("<|assistant|>")
                special("<|boi|>")
                image(1, T, True)
                special("<|eoi|>")
            elif chat:
                q = CAPTION_QUESTIONS[rng.integers(len(CAPTION_QUESTIONS))]  # image first: t ≤ T/2
                special("<|user|>")
                special("<|boi|>")
                image(0, T // 2, False)
                special("<|eoi|>")
                string(q, max_caption)
                special("<|assistant|>")
                string(ex["caption"], max_caption, "caption")
            elif rng.random() < self.image_first:
                special("<|boi|>")
                image(0, T // 2, False)
                special("<|eoi|>")
                string(ex["caption"], max_caption, "caption")
            else:
                if rng.random() >= self.cfg_drop:     # else no caption, for guidance
                    string(ex["caption"], max_caption, "caption")
                special("<|boi|>")
                image(1, T, True)
                special("<|eoi|>")
        else:
            budget = c["max_seq_len"] - 4
            if chat and ex.get("prompt"):
                special("<|user|>")
                string(ex["prompt"], max_caption, "prompt")
                special("<|assistant|>")
            string(ex["text"], budget - length, "text")
        special("<|eos|>")
        return segs, images, length

    def build_batch(self, rng, batch_size):
        """(batch, images, positions): @batch_size rows packed with documents."""
        L = self.config["max_seq_len"]
        batch, images, positions = [], {}, 0
        for _ in range(batch_size):
            row, used, misses = [], 0, 0
            while misses < 8 and L - used >= 8:
                segs, doc_images, length = self.build_document(self.draw_example(rng), rng)
                if length > L - used:
                    misses += 1
                    continue
                k = 0
                for s, seg in enumerate(segs):
                    seg["new_document"] = s == 0
                    if "image" in seg:
                        seg["image"] = len(images)
                        pixels, noise = doc_images[k]
                        images[seg["image"]] = {"pixels": pixels, "noise": noise}
                        k += 1
                row += segs
                used += length
            batch.append(row)
            positions += used
        return batch, images, positions
