"""tokenizer.py: the byte-level BPE of engine/tf-tokenizer.c, encode and decode.

The tokenizer is the JSON the C trainer stores in every checkpoint's
__metadata__ "tokenizer": {"type": "byte-bpe", "version": 1, "merges":
[[left, right], ...], "special": {"<|bos|>": id, ...}}. Ids 0..255 are bytes,
merge k makes id 256 + k, the special tokens take the ids the JSON names.

Encoding is the C encoder's, step for step, so both give the same ids:
text (as UTF-8 bytes) is cut into chunks (chunk_end: an optional space, then
a run of one byte class; a run of whitespace leaves its last space to the
word after it); inside a chunk the pair with the lowest merged id is merged,
every occurrence from its first place on, left to right, until no pair of
the chunk has a merge. Special tokens are never made from text.
"""

import json

N_BYTE_TOKENS = 256
SPECIAL_TEXTS = ("<|bos|>", "<|eos|>", "<|boi|>", "<|eoi|>", "<|pad|>", "<|user|>",
                 "<|assistant|>")
# The config field of each special token, in the same order.
SPECIAL_CONFIG_KEYS = ("bos_id", "eos_id", "boi_id", "eoi_id", "pad_id", "user_id",
                       "assistant_id")

_LETTER, _DIGIT, _SPACE, _OTHER = range(4)


def _byte_class(c):
    if c >= 0x80 or 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A:
        return _LETTER          # bytes of multi-byte UTF-8 count as letters
    if 0x30 <= c <= 0x39:
        return _DIGIT
    if c == 0x20 or 0x09 <= c <= 0x0D:
        return _SPACE
    return _OTHER


_CLASS = bytes(_byte_class(c) for c in range(256))


def chunk_end(p, start):
    """The end of the chunk of @p (bytes) that starts at @start."""
    n = len(p)
    i = start
    if p[i] == 0x20 and i + 1 < n and _CLASS[p[i + 1]] != _SPACE:
        i += 1
    cls = _CLASS[p[i]]
    j = i + 1
    while j < n and _CLASS[p[j]] == cls:
        j += 1
    if cls == _SPACE and j < n and j - start > 1 and p[j - 1] == 0x20:
        j -= 1
    return j


class Tokenizer:
    def __init__(self, merges, special_ids):
        self.merges = [(int(a), int(b)) for a, b in merges]
        self.ranks = {}
        for k, pair in enumerate(self.merges):
            a, b = pair
            if not (0 <= a < N_BYTE_TOKENS + k and 0 <= b < N_BYTE_TOKENS + k):
                raise ValueError(f"tokenizer: merge {k} [{a},{b}] uses an id not made yet")
            if pair in self.ranks:
                raise ValueError(f"tokenizer: merge {k} [{a},{b}] repeats an earlier merge")
            self.ranks[pair] = N_BYTE_TOKENS + k
        self.n_ordinary = N_BYTE_TOKENS + len(self.merges)
        self.vocab_size = self.n_ordinary + len(SPECIAL_TEXTS)
        self.special_ids = [int(i) for i in special_ids]
        if sorted(self.special_ids) != list(range(self.n_ordinary, self.vocab_size)):
            raise ValueError(f"tokenizer: special ids {self.special_ids} are not "
                             f"{self.n_ordinary}..{self.vocab_size - 1} each once")
        self.token_bytes = [bytes([i]) for i in range(N_BYTE_TOKENS)]
        for a, b in self.merges:
            self.token_bytes.append(self.token_bytes[a] + self.token_bytes[b])
        self.token_bytes += [b""] * len(SPECIAL_TEXTS)
        for text, i in zip(SPECIAL_TEXTS, self.special_ids):
            self.token_bytes[i] = text.encode()

    @classmethod
    def from_json(cls, text, what="tokenizer JSON"):
        obj = json.loads(text)
        if not isinstance(obj, dict) or obj.get("type") != "byte-bpe" or obj.get("version") != 1:
            raise ValueError(f"{what}: expected {{\"type\": \"byte-bpe\", \"version\": 1, ...}}")
        special = obj.get("special")
        if not isinstance(special, dict) or any(s not in special for s in SPECIAL_TEXTS):
            raise ValueError(f"{what}: \"special\" must name {', '.join(SPECIAL_TEXTS)}")
        return cls(obj["merges"], [special[s] for s in SPECIAL_TEXTS])

    @classmethod
    def from_checkpoint(cls, path):
        """The tokenizer stored in a model or training-state .safetensors."""
        from safetensors_io import read_safetensors
        _, metadata = read_safetensors(path)
        if "tokenizer" not in metadata:
            raise ValueError(f"{path}: __metadata__ has no 'tokenizer'")
        return cls.from_json(metadata["tokenizer"], what=f"{path}: tokenizer")

    def to_json(self):
        """The same compact JSON the C writer makes (key order included)."""
        return json.dumps({"type": "byte-bpe", "version": 1,
                           "merges": [list(m) for m in self.merges],
                           "special": {s: i for s, i in zip(SPECIAL_TEXTS, self.special_ids)}},
                          separators=(",", ":"))

    def special(self, text):
        """The id of a special token by its text ("<|boi|>")."""
        return self.special_ids[SPECIAL_TEXTS.index(text)]

    def apply_to_config(self, config):
        """Sets vocab_size and the special ids of @config from this tokenizer."""
        config["vocab_size"] = self.vocab_size
        for key, i in zip(SPECIAL_CONFIG_KEYS, self.special_ids):
            config[key] = i
        return config

    def _merge_chunk(self, syms):
        ranks = self.ranks
        while len(syms) > 1:
            best, best_at = None, 0
            for i in range(len(syms) - 1):
                r = ranks.get((syms[i], syms[i + 1]))
                if r is not None and (best is None or r < best):
                    best, best_at = r, i
            if best is None:
                break
            a, b = self.merges[best - N_BYTE_TOKENS]
            out = syms[:best_at]
            i = best_at
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    out.append(best)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            syms = out
        return syms

    def encode(self, text):
        p = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        ids = []
        start = 0
        while start < len(p):
            end = chunk_end(p, start)
            ids += self._merge_chunk(list(p[start:end]))
            start = end
        return ids

    def decode(self, ids):
        return b"".join(self.token_bytes[i] for i in ids).decode("utf-8", errors="replace")
