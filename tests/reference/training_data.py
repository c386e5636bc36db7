"""training_data.py: the training data and the data mix of engine/tf-train.c, in Python.

Sources (SPEC §5), by the names `transfusion-cli train --data` takes:
  fashion           Fashion-MNIST read from the Debian package's IDX files
                    (/usr/share/datasets/fashion-mnist), centred on the image,
                    captions from the same phrases and templates as engine/tf-data.c
  DIR (a folder)    a user folder: PNG images with same-named .txt captions, fitted
                    into a white square and area-resampled as tf_image_to_model
                    does (PIL; the same convention, not bit for bit)
  wordnet           WordNet (/usr/share/wordnet/data.*, Debian's wordnet-base)
                    parsed and enumerated as engine/tf-data.c does: definitions,
                    usage examples and synonyms as questions and answers, but
                    not the drawable subjects' senses (below), nor a definition
                    of another noun sense of a subject word
  subjects          the drawable subjects (engine/tf-data-subjects.c: the clothes,
                    shapes and colours, and the emoji names of Unicode's
                    emoji-test.txt that are WordNet nouns, by index.noun's order
                    of senses) in the sense their pictures show; a quarter of
                    the others than class names, shapes and colours held out
                    from "what is a X?", which is their held-out split
  FILE.safetensors  a shard written by `transfusion-cli data --export DIR`:
                    the C engine's own examples (pixels and captions), which is
                    how shapes (Cairo), emoji (Noto) and chat get here
  shapes, emoji,    the shard NAME.safetensors in --shards DIR; the chat shard's
  chat              turns always take the chat template, as example.chat in C

The mix (DataMix) is engine/tf-train.c's build_doc, doc_chat_turn and
build_batch: caption first, or image first with t ≤ T/2 (--image-first),
the caption dropped for guidance (--cfg-drop), the chat template for a
fraction (--chat) and for the chat source: "draw X" → image, image + "what
is this?" → caption, question → answer, each turn ending with <|eos|>, and
half of the chat documents going on for up to four turns from examples
drawn then (those that fit). Text the model reads (a caption before its
image, a chat message) gets a capital first and a full stop now and then
(as_people_write), and a prompt for shapes or emoji sometimes leaves out
where, how large or on what background, or says "big", "little", "center"
(loosen_prompt). Documents are packed into rows of at most max_seq_len, a
document that does not fit skipped and a row closed after eight misses.
What differs from C: the random numbers come from a numpy Generator (the
draws in the C order, but not the C stream), so the documents are of the
same forms and frequencies, not the same documents; and fashion, wordnet,
subjects and folders are read here, not taken from the C engine.
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
                "create an image of ", "please draw ", "generate ", "i would like a picture of ",
                "sketch ", "make an image of ")
CAPTION_QUESTIONS = ("what is this?", "what is in this picture?", "describe this image.",
                     "caption this.", "what do you see?", "what's this?", "what is shown here?",
                     "can you describe this?", "what is it?", "what's in the picture?")
CHAT_MORE_TURNS = 0.5     # the share of chat documents that go on for more turns
CHAT_MAX_TURNS = 4

# engine/tf-data.c
FASHION_SUBJECTS = ("t-shirt", "trousers", "pullover", "dress", "coat", "sandal", "shirt",
                    "sneaker", "bag", "ankle boot")
FASHION_PHRASES = (
    ("a t-shirt", "a tee", "a top", "a tee shirt", "t-shirt", "a tshirt", "a short-sleeved top"),
    ("a pair of trousers", "trousers", "a pair of pants", "pants", "a pair of jeans", "jeans",
     "slacks"),
    ("a pullover", "a sweater", "a jumper", "pullover", "a knit sweater", "a sweatshirt"),
    ("a dress", "a summer dress", "a frock", "dress", "a gown", "a sleeveless dress"),
    ("a coat", "a jacket", "a winter coat", "coat", "an overcoat", "a parka"),
    ("a sandal", "an open sandal", "a summer sandal", "sandal", "sandals", "a pair of sandals",
     "a strappy sandal"),
    ("a shirt", "a button-up shirt", "a blouse", "shirt", "a collared shirt",
     "a long-sleeved shirt"),
    ("a sneaker", "a trainer", "a running shoe", "a sports shoe", "sneaker", "sneakers",
     "a tennis shoe", "a pair of sneakers"),
    ("a bag", "a handbag", "a purse", "a tote bag", "bag", "a shoulder bag", "a clutch"),
    ("an ankle boot", "a boot", "a short boot", "ankle boot", "ankle boots", "a leather boot",
     "a bootie"),
)
FASHION_TEMPLATES = (
    "{}", "a photo of {}", "a picture of {}", "an image of {}", "{} on a black background",
    "a grayscale photo of {}", "a black and white picture of {}", "a product photo of {}",
    "{}, white on black", "a small low-resolution image of {}", "a drawing of {}",
    "an illustration of {}", "a sketch of {}", "a simple image of {}", "a thumbnail of {}",
    "a catalogue photo of {}", "{}, isolated", "a gray picture of {}",
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
EMOJI_DIR = "/usr/share/unicode/emoji"
WORDNET_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
WORDNET_MAX_GLOSS = 300
WORDNET_HELDOUT_EVERY = 50
WORDNET_MAX_USAGES = 3
WORDNET_MAX_WORDS = 255
WORDNET_DEFINITION, WORDNET_USAGE, WORDNET_SYNONYM, WORDNET_QUESTION = range(4)
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
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

# engine/tf-data-subjects.c: the drawable subjects with the sense their
# pictures show (the start of its gloss) or, where WordNet lacks it, a
# definition; flags CORE (weighted up, never held out), PLURAL, MASS.
SUBJECT_CORE, SUBJECT_PLURAL, SUBJECT_MASS = 1, 2, 4
SUBJECT_SENSES = (
    ("t-shirt", "a close-fitting pullover shirt", None, SUBJECT_CORE),
    ("trousers", "a garment extending from the waist to the knee or ankle", None,
     SUBJECT_CORE | SUBJECT_PLURAL),
    ("pullover", "a sweater that is put on by pulling it over the head", None, SUBJECT_CORE),
    ("dress", "a one-piece garment for a woman", None, SUBJECT_CORE),
    ("coat", "an outer garment that has sleeves", None, SUBJECT_CORE),
    ("sandal", "a shoe consisting of a sole fastened by straps", None, SUBJECT_CORE),
    ("shirt", "a garment worn on the upper half of the body", None, SUBJECT_CORE),
    ("sneaker", "a canvas shoe with a pliable rubber sole", None, SUBJECT_CORE),
    ("bag", "a flexible container with a single opening", None, SUBJECT_CORE),
    ("ankle boot", None, "a boot that reaches just above the ankle", SUBJECT_CORE),
    ("tee", None, "a t-shirt, a close-fitting pullover shirt", 0),
    ("tee shirt", "a close-fitting pullover shirt", None, 0),
    ("top", "a garment (especially for women) that extends from the shoulders", None, 0),
    ("pants", None, "trousers, a garment extending from the waist to the ankle and covering "
     "each leg separately", SUBJECT_PLURAL),
    ("sweater", "a crocheted or knitted garment covering the upper part of the body", None, 0),
    ("jumper", "a crocheted or knitted garment covering the upper part of the body", None, 0),
    ("frock", "a one-piece garment for a woman", None, 0),
    ("jacket", "a short coat", None, 0),
    ("blouse", "a top worn by women", None, 0),
    ("trainer", None, "a sneaker, a canvas shoe with a pliable rubber sole", 0),
    ("running shoe", "a light comfortable shoe designed for running", None, 0),
    ("handbag", "a container used for carrying money and small personal items", None, 0),
    ("purse", "a container used for carrying money and small personal items", None, 0),
    ("tote bag", "a capacious bag or basket", None, 0),
    ("boot", "footwear that covers the whole foot and lower leg", None, 0),
    ("circle", "ellipse in which the two axes are of equal length", None, SUBJECT_CORE),
    ("square", "a plane rectangle with four equal sides", None, SUBJECT_CORE),
    ("triangle", "a three-sided polygon", None, SUBJECT_CORE),
    ("star", "a plane figure with 5 or more points", None, SUBJECT_CORE),
    ("heart", "a plane figure with rounded sides curving inward at the top", None, SUBJECT_CORE),
    ("cross", "a marking that consists of lines that cross each other", None, SUBJECT_CORE),
    ("red", "red color or pigment", None, SUBJECT_CORE | SUBJECT_MASS),
    ("orange", "orange color or pigment", None, SUBJECT_CORE | SUBJECT_MASS),
    ("yellow", "yellow color or pigment", None, SUBJECT_CORE | SUBJECT_MASS),
    ("green", "green color or pigment", None, SUBJECT_CORE | SUBJECT_MASS),
    ("blue", "blue color or pigment", None, SUBJECT_CORE | SUBJECT_MASS),
    ("purple", "a purple color or pigment", None, SUBJECT_CORE | SUBJECT_MASS),
    ("pink", "a light shade of red", None, SUBJECT_CORE | SUBJECT_MASS),
    ("black", "the quality or state of the achromatic color of least lightness", None,
     SUBJECT_CORE | SUBJECT_MASS),
)
# WordNet's lexicographer files (lexnames(5WN)) whose senses fit an emoji
# of each Unicode group, in order of preference; other groups (flags,
# components) name no noun to define.
_LEX_ACT, _LEX_ANIMAL, _LEX_ARTIFACT, _LEX_BODY, _LEX_COMMUNICATION = 4, 5, 6, 8, 10
_LEX_FOOD, _LEX_LOCATION, _LEX_OBJECT, _LEX_PERSON, _LEX_PHENOMENON = 13, 15, 17, 18, 19
_LEX_PLANT, _LEX_SHAPE = 20, 25
SUBJECT_GROUP_LEXFILES = {
    "Smileys & Emotion": (_LEX_BODY, _LEX_PERSON, _LEX_ARTIFACT),
    "People & Body": (_LEX_BODY, _LEX_PERSON),
    "Animals & Nature": (_LEX_ANIMAL, _LEX_PLANT),
    "Food & Drink": (_LEX_FOOD, _LEX_PLANT, _LEX_ARTIFACT),
    "Travel & Places": (_LEX_ARTIFACT, _LEX_OBJECT, _LEX_PHENOMENON, _LEX_LOCATION),
    "Activities": (_LEX_ARTIFACT, _LEX_ACT),
    "Objects": (_LEX_ARTIFACT,),
    "Symbols": (_LEX_SHAPE, _LEX_COMMUNICATION, _LEX_ARTIFACT),
}
SUBJECT_HELDOUT_EVERY = 4
SUBJECT_CORE_REPEATS = 8
SUBJECT_REPEATS = 2
# engine/tf-data.c: the "what is" questions (singular, plural; the first is
# the held-out one) and the other ways of asking, with the bare word.
_SUBJECT_WHAT_IS = (("what is {}?", "what's {}?", "tell me what {} is"),
                    ("what are {}?", "tell me what {} are"))
_SUBJECT_DEFINE = ("define {}", "what does {} mean?", "what is the meaning of {}?",
                   "explain the word {}", "what does the word {} mean?")


def _definition_key(pos):
    """Nouns and verbs have their own questions; adjectives and adverbs share."""
    return pos if pos in ("n", "v") else "a"


def ascii_lower(s):
    """g_ascii_strdown: only A-Z change."""
    return s.translate(_ASCII_LOWER)


def stable_hash(data):
    """FNV-1a over bytes, as engine/tf-data.c's stable_hash."""
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def indefinite_article(word):
    w = ascii_lower(word)
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
    lower, stem = ascii_lower(sentence), ascii_lower(word[:n])
    p = lower.find(stem)
    while p != -1:
        if p == 0 or not lower[p - 1].isascii() or not lower[p - 1].isalnum():
            return True
        p = lower.find(stem, p + 1)
    return False


def emoji_caption_name(cldr):
    """engine/tf-data-emoji.c's caption_name: "flag: Japan" → "flag of japan"."""
    s = cldr.lower().replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    colon = s.find(": ")
    if colon < 0:
        return s
    base, rest = s[:colon], s[colon + 2:]
    if base == "keycap":
        return f"keycap {rest}"
    if rest == "bald":
        return f"bald {base}"
    if rest == "beard":
        return f"{base} with a beard"
    if rest.endswith(" hair"):
        return f"{base} with {rest}"
    last = rest.rfind(", ")
    if last >= 0:
        return f"{base} of {rest[:last]} and {rest[last + 2:]}"
    return f"{base} of {rest}"


def read_emoji_names(directory=EMOJI_DIR):
    """(caption name, Unicode group) of every fully-qualified entry of
    emoji-test.txt without a skin tone, in file order, as
    tf_data_emoji_read_names gives them (no font: every one)."""
    path = os.path.join(directory, "emoji-test.txt")
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    group, out = "", []
    for ln, line in enumerate(lines, 1):
        line = line.strip(_C_SPACE)
        if line.startswith("# group:"):
            group = line[len("# group:"):].strip(_C_SPACE)
            continue
        if not line or line.startswith("#"):
            continue
        semi = line.find(";")
        hash_ = line.find("#", semi) if semi >= 0 else -1
        if hash_ < 0:
            raise ValueError(f"{path}:{ln}: expected 'CODE POINTS ; STATUS # EMOJI E1.0 NAME'")
        if line[semi + 1:hash_].strip(_C_SPACE) != "fully-qualified":
            continue
        cps = [int(h, 16) for h in re.split("[ \t]", line[:semi].strip(_C_SPACE)) if h]
        p = line[hash_ + 1:].lstrip(" ")
        space = p.find(" ")
        version = p[space:].lstrip(" ") if space >= 0 else ""
        name = None
        if version[:1] == "E" and version[1:2].isdigit() and version[1:2].isascii():
            space = version.find(" ")
            name = version[space:].strip(_C_SPACE) if space >= 0 else None
        if not cps or not name:
            raise ValueError(f"{path}:{ln}: expected 'CODE POINTS ; STATUS # EMOJI E1.0 NAME'")
        if any(0x1F3FB <= cp <= 0x1F3FF for cp in cps):
            continue
        out.append((emoji_caption_name(name), group))
    return out


class WordNetSource:
    """WordNet, parsed and enumerated as engine/tf-data.c does (the same
    synsets, items, texts and held-out words, in the same order), as one of
    its two sources:

    wordnet   glosses, examples and synonyms as questions and answers; not
              the drawable subjects' synsets, nor a definition of another
              noun sense of a subject word ("a coat is a thin layer ...");
              every 50th headword (by hash) held out
    subjects  (subjects=True) the drawable subjects (the Fashion-MNIST class
              names and the other nouns of its captions, shapes, colours,
              and the emoji names that are WordNet nouns, from index.noun's
              first sense in a lexicographer file that fits the emoji's
              Unicode group) in the sense their pictures show: defined 8
              (core) or 2 times, used in a sentence, given a synonym; a
              quarter of the others held out, whose held-out split is the
              one "what is a X?" that training never asks of them
    """

    _parsed = {}   # (directory, emoji_dir) → (synsets, subjects): both sources share them

    def __init__(self, split, directory=WORDNET_DIR, emoji_dir=EMOJI_DIR, subjects=False):
        key = (directory, emoji_dir)
        if key not in WordNetSource._parsed:
            # (pos, words, definition, usages, article, offset, lexfile)
            self.synsets = []
            for name in WORDNET_FILES:
                path = os.path.join(directory, name)
                with open(path, "rb") as f:
                    for line_no, line in enumerate(f.read().split(b"\n"), 1):
                        if line and not line.startswith(b"  "):
                            self._parse(line, path, line_no)
            WordNetSource._parsed[key] = (self.synsets, self._find_subjects(directory, emoji_dir))
        self.synsets, self.subjects = WordNetSource._parsed[key]
        self.items = []   # (synset or None, kind, usage, subject or None)
        if subjects:
            for k, (word, s, _, flags, heldout) in enumerate(self.subjects):
                if split == HELDOUT:
                    if heldout:
                        self.items.append((s, WORDNET_QUESTION, 0, k))
                    continue
                repeats = SUBJECT_CORE_REPEATS if flags & SUBJECT_CORE else SUBJECT_REPEATS
                self.items += [(s, WORDNET_DEFINITION, 0, k)] * repeats
                if s is None:
                    continue
                usages = self.synsets[s][3]
                self.items += [(s, WORDNET_USAGE, u, k) for u in range(len(usages))
                               if sentence_uses(usages[u], word)]
                if self._others(self.synsets[s][1], word):
                    self.items.append((s, WORDNET_SYNONYM, 0, k))
        else:
            owned = {s for _, s, _, _, _ in self.subjects if s is not None}
            subject_words = {word for word, _, _, _, _ in self.subjects}
            for s, (pos, words, definition, usages, article, _, _) in enumerate(self.synsets):
                word = words[0]
                heldout = stable_hash(word.lower().encode()) % WORDNET_HELDOUT_EVERY == 0
                if s in owned or heldout != (split == HELDOUT):
                    continue
                if pos != "n" or ascii_lower(word) not in subject_words:
                    self.items.append((s, WORDNET_DEFINITION, 0, None))
                self.items += [(s, WORDNET_USAGE, u, None) for u in range(len(usages))]
                if self._others(words, word):
                    self.items.append((s, WORDNET_SYNONYM, 0, None))
        self.name = "subjects" if subjects else "wordnet"
        if not self.items:
            raise ValueError(f"{directory}: no {'drawable subjects' if subjects else 'synsets'}"
                             f" found for the {split} split")

    @staticmethod
    def _others(words, word):
        """The synset's words other than @word (any case)."""
        return [w for w in words if ascii_lower(w) != ascii_lower(word)]

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
        self.synsets.append((pos, words, definition, usages, article,
                             _c_ulong(fields[0]), _c_ulong(fields[1])))

    def _find_subjects(self, directory, emoji_dir):
        """engine/tf-data.c's wordnet_find_subjects: [(word, synset or None,
        definition, flags, heldout)] in the order found, the listed subjects
        first, then the emoji names (a subject whose sense is not found is
        left out)."""
        candidates = {}   # word → [sense entry or None, lexfiles, synsets]
        for entry in SUBJECT_SENSES:
            candidates[entry[0]] = [entry, None, []]
        for name, group in read_emoji_names(emoji_dir):
            lexfiles = SUBJECT_GROUP_LEXFILES.get(group)
            if lexfiles is not None and name not in candidates:
                candidates[name] = [None, lexfiles, []]
        by_offset = {}
        for s, (pos, words, *_rest) in enumerate(self.synsets):
            if pos != "n":
                continue
            by_offset[self.synsets[s][5]] = s
            for w in words:
                lower = ascii_lower(w)
                c = candidates.get(lower)
                if c is None:
                    c = candidates.get(lower + "s")   # WordNet's lemma is singular: "trouser"
                    if c is None or c[0] is None or not c[0][3] & SUBJECT_PLURAL:
                        continue
                c[2].append(s)
        index_lines = {}
        with open(os.path.join(directory, "index.noun"), "rb") as f:
            for raw in f.read().split(b"\n"):
                line = raw.decode("utf-8", "surrogateescape")
                space = line.find(" ")
                if not line or line[0] == " " or space < 0:
                    continue
                lemma = line[:space].replace("_", " ")
                c = candidates.get(lemma)
                if c is not None and c[0] is None:
                    index_lines[lemma] = line
        subjects = []
        for word, (entry, lexfiles, synsets) in candidates.items():
            s = None
            if entry is not None and entry[1] is not None:
                s = next((s for s in synsets if self.synsets[s][2].startswith(entry[1])), None)
                if s is None:
                    continue
            elif entry is None:
                s = self._index_first_sense(index_lines.get(word), by_offset, word, lexfiles)
                if s is None:
                    continue
            flags = entry[3] if entry is not None else 0
            heldout = (not flags & SUBJECT_CORE
                       and stable_hash(("subject:" + word).encode()) % SUBJECT_HELDOUT_EVERY == 0)
            subjects.append((word, s, entry[2] if entry is not None else None, flags, heldout))
        return subjects

    def _index_first_sense(self, line, by_offset, word, lexfiles):
        """The first noun sense of @word in its index.noun @line from the
        first of @lexfiles that has one, if @word (as written) is in it."""
        if line is None:
            return None
        fields = line.split(" ")
        while fields and not fields[-1]:
            fields.pop()
        if len(fields) < 4 or not re.fullmatch("[0-9]+", fields[2]):
            return None
        n_senses = int(fields[2])
        if not 1 <= n_senses <= 1000 or n_senses > len(fields):
            return None
        for lexfile in lexfiles:
            for field in fields[len(fields) - n_senses:]:
                s = by_offset.get(_c_ulong(field))
                if s is not None and self.synsets[s][6] == lexfile and word in self.synsets[s][1]:
                    return s
        return None

    def __len__(self):
        return len(self.items)

    def _subject_prompts(self, k_subject, kind):
        """The prompts a subject's definition (or held-out question) may
        take, each (template, uses the term): held-out subjects never get
        a "what is" question in training."""
        word, _, _, flags, heldout = self.subjects[k_subject]
        what = [(t, True) for t in _SUBJECT_WHAT_IS[1 if flags & SUBJECT_PLURAL else 0]]
        if kind == WORDNET_QUESTION:
            return what[:1]
        define = [(t, False) for t in _SUBJECT_DEFINE]
        return define if heldout else what + define

    def choices(self, index):
        """(number of prompt phrasings, number of synonyms to pick from)."""
        s, kind, _, k_subject = self.items[index]
        word = self.synsets[s][1][0] if k_subject is None else self.subjects[k_subject][0]
        if k_subject is not None and kind in (WORDNET_DEFINITION, WORDNET_QUESTION):
            n_prompts = len(self._subject_prompts(k_subject, kind))
        else:
            key = _definition_key(self.synsets[s][0]) if kind == WORDNET_DEFINITION else kind
            n_prompts = len(_WORDNET_PROMPTS[key])
        n_others = len(self._others(self.synsets[s][1], word)) if kind == WORDNET_SYNONYM else 1
        return n_prompts, n_others

    def render(self, index, k, j):
        """Example @index with prompt phrasing @k and synonym @j."""
        s, kind, sub, k_subject = self.items[index]
        if k_subject is not None:
            word, _, own_definition, flags, _ = self.subjects[k_subject]
            plural = flags & SUBJECT_PLURAL
            term = word if flags & (SUBJECT_PLURAL | SUBJECT_MASS) \
                else f"{indefinite_article(word)} {word}"
            if kind in (WORDNET_DEFINITION, WORDNET_QUESTION):
                template, uses_term = self._subject_prompts(k_subject, kind)[k]
                definition = self.synsets[s][2] if s is not None else own_definition
                ex = text_example(template.format(term if uses_term else word),
                                  f"{term} {'are' if plural else 'is'} {definition}.")
                ex["subject"] = word
                return ex
        else:
            pos, words, definition, _, article = self.synsets[s][:5]
            word = words[0]
            term = f"{indefinite_article(word)} {word}" if article else word
        usages = self.synsets[s][3]
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
                              f"another word for {word} is "
                              f"{self._others(self.synsets[s][1], word)[j]}.")
        ex["subject"] = word
        return ex

    def get(self, index, rng):
        n_prompts, n_others = self.choices(index)
        kind = self.items[index][1]
        k = int(rng.integers(n_prompts)) if kind != WORDNET_QUESTION else 0
        j = int(rng.integers(n_others)) if kind == WORDNET_SYNONYM else 0
        return self.render(index, k, j)


def _c_ulong(text):
    """strtoul (text, NULL, 10): the leading decimal digits, 0 if none."""
    m = re.match("[0-9]*", text)
    return int(m.group()) if m.group() else 0


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
            ex["chat"] = self.name == "chat"     # the chat source's turns are always chat
        if self.ids_usable:
            ex["ids"] = {k: e[k + "_ids"] for k in ("caption", "prompt", "text") if k + "_ids" in e}
        return ex


def open_source(name, split, image_size, channels, shards_dir=None, tokenizer=None):
    """A source by the name `transfusion-cli train --data` takes (see the top)."""
    if name == "fashion":
        return FashionSource(split, image_size, channels)
    if name in ("wordnet", "subjects"):
        return WordNetSource(split, subjects=name == "subjects")
    if name.endswith(".safetensors"):
        return ShardSource(name, image_size, channels, tokenizer)
    if name in ("shapes", "emoji", "chat"):
        path = os.path.join(shards_dir or ".", f"{name}.safetensors")
        if not os.path.exists(path):
            raise ValueError(f"{name}: no shard {path}; write one with "
                             f"transfusion-cli data --export DIR --data {name} --count N "
                             f"[--split {split}] and pass --shards DIR")
        return ShardSource(path, image_size, channels, tokenizer)
    if os.path.isdir(name):
        return FolderSource(name, split, image_size, channels)
    raise ValueError(f"{name}: not a source (fashion, shapes, emoji, wordnet, subjects, chat, "
                     f"a .safetensors shard or a folder)")


# ---- The mix -------------------------------------------------------------------------

def draw_t(config, rng, t_lo, t_hi):
    """A noise level for generating an image, as the config's t_sampling
    draws it (engine/tf-diffusion.c: tf_diffusion_sample_t)."""
    if config.get("t_sampling", "uniform") == "logit_normal":
        n = rng.standard_normal()
        u = 1.0 / (1.0 + math.exp(-(config["t_mean"] + config["t_scale"] * n)))
        return min(max(int(math.ceil(u * config["diffusion_steps"])), t_lo), t_hi)
    return int(t_lo + rng.integers(t_hi - t_lo + 1))


def as_people_write(rng, text):
    """engine/tf-train.c's as_people_write: now and then a capital first
    (1 in 4) and a full stop after a final letter or digit (15 in 100)."""
    if rng.random() < 0.25:
        text = text[:1].upper() + text[1:] if text[:1].isascii() else text
    if text and text[-1].isascii() and text[-1].isalnum() and rng.random() < 0.15:
        text += "."
    return text


_WHERE = re.compile(r"\s+(?:at the (?:top|bottom)(?: (?:left|right))?"
                    r"|in the (?:top|bottom) (?:left|right) corner"
                    r"|on the (?:left|right)|in the (?:centre|middle))\b")
_SIZE = re.compile(r"\ba (small|medium|large) (\S+)")
_BACKGROUND = re.compile(r" on an? [a-z]+ background$")
_CENTRE = re.compile(r"\bcentre\b")


def loosen_prompt(rng, source, caption):
    """engine/tf-train.c's tf_train_loosen_prompt: a prompt for shapes or
    emoji without the places (4 in 10), emoji without the background (1 in
    4), without the size (30 in 100) or with "big"/"little" (15 in 100; "a"
    becomes "an" before a vowel, and before a u the size stays), "center"
    (3 in 10)."""
    if source not in ("shapes", "emoji"):
        return caption
    text = caption
    if rng.random() < 0.4:
        text = _WHERE.sub("", text)
    if source == "emoji" and rng.random() < 0.25:
        text = _BACKGROUND.sub("", text)
    u = rng.random()
    if u < 0.45:
        def edit(m):
            size, word = m.group(1), m.group(2)
            if u >= 0.3:
                return f"a {dict(large='big', small='little').get(size, size)} {word}"
            if word[0] == "u":
                return m.group(0)
            return f"{'an' if word[0] in 'aeio' else 'a'} {word}"
        text = _SIZE.sub(edit, text)
    if rng.random() < 0.3:
        text = _CENTRE.sub("center", text)
    return text


class _Document:
    """Segments of one document (or one chat turn) as they are built."""

    def __init__(self, mix):
        self.mix, self.segs, self.images, self.length = mix, [], [], 0

    def text(self, ids):
        if not ids:
            return
        if self.segs and "text" in self.segs[-1]:
            self.segs[-1]["text"] += ids
        else:
            self.segs.append({"text": list(ids)})
        self.length += len(ids)

    def special(self, name):
        self.text([self.mix.tok.special(name)])

    def string(self, ex, s, max_tokens, key=None):
        """@s, cut at @max_tokens; the C encoder's ids from a shard when @s
        is the example's own text @key, unchanged."""
        if not s:
            return
        cached = ex.get("ids", {}).get(key) if key and ex.get(key) == s else None
        ids = list(cached) if cached is not None else self.mix.tok.encode(s)
        self.text(ids[:max(max_tokens, 0)])

    def image(self, rng, pixels, image_first):
        """ε drawn now, at t for generating (1..T as t_sampling draws it) or
        for reading it (uniform in 0..T/2)."""
        c = self.mix.config
        T = c["diffusion_steps"]
        t = int(rng.integers(T // 2 + 1)) if image_first else draw_t(c, rng, 1, T)
        noise = rng.standard_normal(np.shape(pixels)).astype(np.float32)
        self.images.append((pixels, noise))
        self.segs.append({"image": None, "t": t, "diffusion_loss": True})
        self.length += self.mix.n_patches

    def append(self, other):
        if other.segs and self.segs and "text" in other.segs[0] and "text" in self.segs[-1]:
            self.segs[-1]["text"] += other.segs[0]["text"]
            self.segs += other.segs[1:]
        else:
            self.segs += other.segs
        self.images += other.images
        self.length += other.length


class DataMix:
    """Documents and packed batches in the twin's batch format (twin.py),
    built as engine/tf-train.c's build_doc, doc_chat_turn and build_batch
    build them. What differs: the random numbers (a numpy Generator, drawn
    in the C order where it is easy, but not the C stream), and the
    sources' own (shards give the C engine's examples as exported)."""

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
        ex = source.get(int(rng.integers(len(source))), rng)
        ex["source"] = source.name
        return ex

    def _chat_turn(self, ex, rng, doc):
        """One turn from @ex, ending with <|eos|>: "draw X" → image, image +
        "what is this?" → caption, or question → answer; False (nothing
        added) for a text example without a question."""
        L = self.config["max_seq_len"]
        max_caption = L // 4
        if ex["kind"] == "image":
            doc.special("<|user|>")
            if rng.random() < 0.5:
                phrase = DRAW_PHRASES[rng.integers(len(DRAW_PHRASES))]
                loose = loosen_prompt(rng, ex.get("source"), ex["caption"])
                doc.string(ex, as_people_write(rng, phrase + loose), max_caption)
                doc.special("<|assistant|>")
                doc.special("<|boi|>")
                doc.image(rng, ex["pixels"], False)
                doc.special("<|eoi|>")
            else:                                  # the image first: t ≤ T/2
                q = CAPTION_QUESTIONS[rng.integers(len(CAPTION_QUESTIONS))]
                doc.special("<|boi|>")
                doc.image(rng, ex["pixels"], True)
                doc.special("<|eoi|>")
                doc.string(ex, as_people_write(rng, q), max_caption)
                doc.special("<|assistant|>")
                doc.string(ex, ex["caption"], max_caption, "caption")
        else:
            if not ex.get("prompt"):
                return False
            doc.special("<|user|>")
            doc.string(ex, as_people_write(rng, ex["prompt"]), max_caption, "prompt")
            doc.special("<|assistant|>")
            doc.string(ex, ex["text"], L - 4 - doc.length, "text")
        doc.special("<|eos|>")
        return True

    def build_document(self, ex, rng, room=None):
        """(segments, images, length): one document of the mix for @ex; images
        are (pixels, noise) in segment order. A chat document goes on, half
        the time, for up to four turns in all, each from an example drawn
        now, as long as they fit in @room positions."""
        c = self.config
        L = c["max_seq_len"]
        room = L if room is None else room
        max_caption = L // 4
        chat = rng.random() < self.chat_fraction or ex.get("chat", False)
        doc = _Document(self)
        doc.special("<|bos|>")
        if chat and self._chat_turn(ex, rng, doc):
            if rng.random() < CHAT_MORE_TURNS:
                turns = 2 + int(rng.integers(CHAT_MAX_TURNS - 1))
                for _ in range(1, turns):
                    turn = _Document(self)
                    if self._chat_turn(self.draw_example(rng), rng, turn) \
                            and doc.length + turn.length <= room:
                        doc.append(turn)
            return doc.segs, doc.images, doc.length
        if ex["kind"] == "image":
            if rng.random() < self.image_first:
                doc.special("<|boi|>")
                doc.image(rng, ex["pixels"], True)
                doc.special("<|eoi|>")
                doc.string(ex, ex["caption"], max_caption, "caption")
            else:
                if rng.random() >= self.cfg_drop:     # else no caption, for guidance
                    loose = loosen_prompt(rng, ex.get("source"), ex["caption"])
                    doc.string(ex, as_people_write(rng, loose), max_caption, "caption")
                doc.special("<|boi|>")
                doc.image(rng, ex["pixels"], False)
                doc.special("<|eoi|>")
        else:
            doc.string(ex, ex["text"], L - 4 - doc.length, "text")
        doc.special("<|eos|>")
        return doc.segs, doc.images, doc.length

    def build_batch(self, rng, batch_size):
        """(batch, images, positions): @batch_size rows packed with documents."""
        L = self.config["max_seq_len"]
        batch, images, positions = [], {}, 0
        for _ in range(batch_size):
            row, used, misses = [], 0, 0
            while misses < 8 and L - used >= 8:
                segs, doc_images, length = self.build_document(self.draw_example(rng), rng,
                                                               L - used)
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
