#!/usr/bin/env python3
"""Writes the seed corpus of fuzz-train-state: small training states (the
file `train --resume` reads) of a 2-wide, one-layer model, one valid and a few
near misses, into tests/fuzz/corpus/train-state/. The tokenizer is the one of
the committed model seed (263 symbols, no merges)."""
import json
import os
import struct

here = os.path.dirname(os.path.abspath(__file__))
seed_model = os.path.join(here, 'corpus', 'model', 'valid-f16-tokenizer')
out_dir = os.path.join(here, 'corpus', 'train-state')


def header(path):
    data = open(path, 'rb').read()
    n = struct.unpack('<Q', data[:8])[0]
    return json.loads(data[8:8 + n])


def n_params(c):
    d, h, V = c['d_model'], c['mlp_hidden'], c['vocab_size']
    pd = c['patch_size'] ** 2 * c['image_channels']
    npatch = (c['image_size'] // c['patch_size']) ** 2
    n = V * d + d * pd + d + npatch * d + 2 * (d * d + d)
    n += c['n_layers'] * (d + 4 * d * d + d + 3 * h * d)
    return n + d + V * d + pd * d + pd


def write(name, meta, tensors):
    head, blob = {'__metadata__': meta}, b''
    for tname, values in tensors:
        raw = struct.pack('<%df' % len(values), *values)
        head[tname] = {'dtype': 'F32', 'shape': [len(values)],
                       'data_offsets': [len(blob), len(blob) + len(raw)]}
        blob += raw
    text = json.dumps(head, separators=(',', ':')).encode()
    text += b' ' * (-len(text) % 8)
    with open(os.path.join(out_dir, name), 'wb') as f:
        f.write(struct.pack('<Q', len(text)) + text + blob)


meta = header(seed_model)['__metadata__']
config = json.loads(meta['config'])
config.update(d_model=2, n_heads=1, mlp_hidden=1)
n = n_params(config)
good = {
    'format': 'transfusion-train-state',
    'config': json.dumps(config),
    'tokenizer': meta['tokenizer'],
    'options': 'fuzz',
    'step': '5',
    'steps': '10',
    'rng': '0123456789abcdef' * 4,
    'elapsed': '1.500',
}
values = [((i * 37) % 101 - 50) / 100.0 for i in range(n)]
tensors = [(t, values) for t in ('params', 'adam.m', 'adam.v', 'ema')]
os.makedirs(out_dir, exist_ok=True)
write('valid', good, tensors)
write('valid-warm-start', dict(good, warm_start='weights of a.safetensors'), tensors)
write('short-tensor', good, tensors[:3] + [('ema', values[:-1])])
write('missing-ema', good, tensors[:3])
write('bad-rng', dict(good, rng='0' * 64), tensors)
write('bad-elapsed', dict(good, elapsed='1.5s'), tensors)
write('huge-config', dict(good, config=json.dumps(dict(config, d_model=16384, n_layers=256,
                                                        mlp_hidden=65536))), tensors)
print(n, 'parameters;', len(os.listdir(out_dir)), 'files in', out_dir)
