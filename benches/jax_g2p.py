#!/usr/bin/env python3
"""The JAX/XLA-CPU baseline of issue 11: examples/g2p.rs's model, data and training.

    python3 benches/jax_g2p.py [--data ../shared/data/cmudict/cmudict.dict.gz] [--epochs 6]
                               [--limit N] [--seed 0]

Same preparation as wgrad::data::cmudict (alternates and words with characters other than
a-z and the apostrophe dropped, stress digits stripped, at most 16 letters, sorted, every 20th
word to the test split) and the same model as `cargo run --release --example g2p`: letter
embedding 64, bidirectional LSTM encoder 128 per direction, LSTM decoder 256 started from
tanh(W[h_fwd_last; h_bwd_first] + b), fed the previous phoneme (teacher forcing), additive
attention over the encoder states using the previous decoder state, logits from
[state; context]; LSTM gates in CNTK's order (g, i, f, o) with 1 added to the forget gate,
glorot-uniform weights, zero biases, the attention's score vector uniform in +-1/sqrt(128).
Cross-entropy averaged over the valid tokens, Adam lr 1e-3, batches of 128 words of about the
same length (shuffled, sorted by length, the batches shuffled), letters and phonemes padded to
multiples of 4 so that XLA compiles a few shapes. Greedy decoding of the test split, then
`PER: x.x% WER: y.y%`. Prints training tokens/s per epoch (phonemes + the end token) and
decoding words/s. Needs `pip install jax` (CPU).
"""
import argparse
import gzip
import time

import jax
import jax.numpy as jnp
import numpy as np

LETTERS = "abcdefghijklmnopqrstuvwxyz'"
PHONEMES = ("AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T "
            "TH UH UW V W Y Z ZH").split()
START = END = len(PHONEMES)  # the decoder's start input and end class
EMBED, ENC, DEC, ATT, BATCH, LR, MAX_LETTERS = 64, 128, 256, 128, 128, 1e-3, 16


def load(path):
    opener = gzip.open if path.endswith(".gz") else open
    words = {}
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            parts = line.split("#")[0].split()
            if not parts or (parts[0].endswith(")") and "(" in parts[0]):
                continue
            word = parts[0]
            if any(c not in LETTERS for c in word) or len(word) > MAX_LETTERS:
                continue
            phones = [PHONEMES.index(p.rstrip("0123456789")) for p in parts[1:]]
            words[word] = ([LETTERS.index(c) for c in word], phones)
    ordered = [v for _, v in sorted(words.items())]
    test = [w for k, w in enumerate(ordered) if k % 20 == 0]
    train = [w for k, w in enumerate(ordered) if k % 20 != 0]
    return train, test


def glorot(key, shape):
    s = np.sqrt(6.0 / (shape[0] + shape[1]))
    return jax.random.uniform(key, shape, jnp.float32, -s, s)


def init(seed):
    keys = iter(jax.random.split(jax.random.PRNGKey(seed), 32))
    lstm = lambda i, h: {"W": glorot(next(keys), (i, 4 * h)), "U": glorot(next(keys), (h, 4 * h)),
                         "b": jnp.zeros(4 * h)}
    s = 1.0 / np.sqrt(ATT)
    return {
        "letters": glorot(next(keys), (len(LETTERS), EMBED)),
        "phonemes": glorot(next(keys), (START + 1, EMBED)),
        "fwd": lstm(EMBED, ENC), "bwd": lstm(EMBED, ENC), "dec": lstm(EMBED, DEC),
        "bridge_W": glorot(next(keys), (2 * ENC, DEC)), "bridge_b": jnp.zeros(DEC),
        "att_q": glorot(next(keys), (DEC, ATT)), "att_k": glorot(next(keys), (2 * ENC, ATT)),
        "att_kb": jnp.zeros(ATT), "att_v": jax.random.uniform(next(keys), (ATT,), jnp.float32, -s, s),
        "out_W": glorot(next(keys), (DEC + 2 * ENC, END + 1)), "out_b": jnp.zeros(END + 1),
    }


def cell(p, x, h, c):
    z = x @ p["W"] + h @ p["U"] + p["b"]
    g, i, f, o = jnp.split(z, 4, axis=-1)
    c = jax.nn.sigmoid(f + 1.0) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jnp.tanh(c) * jax.nn.sigmoid(o), c


def lstm(p, xs, mask, h0, c0):
    """xs [B, T, F], mask [B, T]: outputs [B, T, H] (0 at padding); the state stops at the end."""
    def step(carry, inp):
        h, c = carry
        x, m = inp
        h2, c2 = cell(p, x, h, c)
        m = m[:, None]
        h, c = jnp.where(m, h2, h), jnp.where(m, c2, c)
        return (h, c), h * m
    _, hs = jax.lax.scan(step, (h0, c0), (xs.swapaxes(0, 1), mask.T))
    return hs.swapaxes(0, 1)


def reverse_within(x, lengths):
    """Each sequence's valid steps in reverse order (padding stays at the end)."""
    t = jnp.arange(x.shape[1])[None, :]
    idx = jnp.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
    return jnp.take_along_axis(x, idx[:, :, None], axis=1)


def encode(p, letters, lengths):
    mask = jnp.arange(letters.shape[1])[None, :] < lengths[:, None]
    x = p["letters"][letters]
    z = lambda h: jnp.zeros((letters.shape[0], h))
    fwd = lstm(p["fwd"], x, mask, z(ENC), z(ENC))
    bwd = reverse_within(lstm(p["bwd"], reverse_within(x, lengths), mask, z(ENC), z(ENC)), lengths)
    enc = jnp.concatenate([fwd, bwd], -1)
    fwd_last = jnp.take_along_axis(fwd, (lengths - 1)[:, None, None], axis=1)[:, 0]
    s0 = jnp.tanh(jnp.concatenate([fwd_last, bwd[:, 0]], -1) @ p["bridge_W"] + p["bridge_b"])
    return enc, mask, s0


def attend(p, query, keys, enc, mask):
    """query [B, Tq, DEC], keys [B, Tk, ATT] (projected): contexts [B, Tq, 2 ENC]."""
    q = query @ p["att_q"]
    score = jnp.tanh(q[:, :, None, :] + keys[:, None, :, :]) @ p["att_v"]
    score = jnp.where(mask[:, None, :], score, -1e30)
    return jax.nn.softmax(score, axis=-1) @ enc


def loss_fn(p, letters, lengths, dec_in, target, tmask):
    enc, mask, s0 = encode(p, letters, lengths)
    s = lstm(p["dec"], p["phonemes"][dec_in], tmask, s0, jnp.zeros_like(s0))
    previous = jnp.concatenate([s0[:, None], s[:, :-1]], 1)
    keys = enc @ p["att_k"] + p["att_kb"]
    ctx = attend(p, previous, keys, enc, mask)
    logits = jnp.concatenate([s, ctx], -1) @ p["out_W"] + p["out_b"]
    lp = jax.nn.log_softmax(logits)
    nll = -jnp.take_along_axis(lp, target[:, :, None], axis=-1)[:, :, 0]
    return jnp.sum(nll * tmask) / jnp.sum(tmask)


@jax.jit
def train_step(p, m, v, t, batch):
    loss, g = jax.value_and_grad(loss_fn)(p, *batch)
    t = t + 1
    m = jax.tree.map(lambda m, g: 0.9 * m + 0.1 * g, m, g)
    v = jax.tree.map(lambda v, g: 0.999 * v + 0.001 * g * g, v, g)
    scale = LR * jnp.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
    p = jax.tree.map(lambda p, m, v: p - scale * m / (jnp.sqrt(v) + 1e-8), p, m, v)
    return p, m, v, t, loss


@jax.jit
def decode_step(p, enc, mask, keys, y, h, c):
    """One greedy step: the query is the previous state h; returns the class and the new state."""
    ctx = attend(p, h[:, None], keys, enc, mask)[:, 0]
    h2, c2 = cell(p["dec"], p["phonemes"][y], h, c)
    logits = jnp.concatenate([h2, ctx], -1) @ p["out_W"] + p["out_b"]
    return jnp.argmax(logits, -1), h2, c2


@jax.jit
def encode_jit(p, letters, lengths):
    enc, mask, s0 = encode(p, letters, lengths)
    return enc, mask, s0, enc @ p["att_k"] + p["att_kb"]


def pad4(n):
    return (n + 3) // 4 * 4


def pack(words):
    b = len(words)
    lt = min(pad4(max(len(w[0]) for w in words)), MAX_LETTERS)
    tt = pad4(max(len(w[1]) + 1 for w in words))
    letters = np.zeros((b, lt), np.int32)
    dec_in = np.full((b, tt), END, np.int32)
    target = np.full((b, tt), END, np.int32)
    tmask = np.zeros((b, tt), np.float32)
    for k, (ls, ps) in enumerate(words):
        letters[k, :len(ls)] = ls
        dec_in[k, 0] = START
        dec_in[k, 1:len(ps) + 1] = ps
        target[k, :len(ps)] = ps
        tmask[k, :len(ps) + 1] = 1
    lengths = np.array([len(w[0]) for w in words], np.int32)
    return letters, lengths, dec_in, target, tmask


def edit_distance(a, b):
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def greedy(p, words, steps):
    out = []
    for k in range(0, len(words), BATCH):
        chunk = words[k:k + BATCH]
        letters, lengths, _, _, _ = pack(chunk)
        enc, mask, h, keys = encode_jit(p, letters, lengths)
        c = jnp.zeros_like(h)
        y = jnp.full((len(chunk),), START, jnp.int32)
        got = []
        for _ in range(steps):
            y, h, c = decode_step(p, enc, mask, keys, y, h, c)
            got.append(np.asarray(y))
        got = np.stack(got, 1)
        for row in got:
            seq = []
            for cls in row:
                if cls == END:
                    break
                seq.append(int(cls))
            out.append(seq)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/cmudict/cmudict.dict.gz")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    print("JAX", jax.__version__, jax.devices())
    train, test = load(args.data)
    rng = np.random.default_rng(args.seed)
    if args.limit:
        train = [train[i] for i in rng.permutation(len(train))[:args.limit]]
        test = [test[i] for i in rng.permutation(len(test))[:max(args.limit // 20, 1)]]
    print(f"CMUDict: {len(train)} training words, {len(test)} test words")
    p = init(args.seed)
    m = jax.tree.map(jnp.zeros_like, p)
    v = jax.tree.map(jnp.zeros_like, p)
    t = jnp.zeros((), jnp.float32)
    tokens = sum(len(w[1]) + 1 for w in train)
    for epoch in range(1, args.epochs + 1):
        order = sorted(rng.permutation(len(train)), key=lambda i: len(train[i][1]))
        batches = [order[k:k + BATCH] for k in range(0, len(order), BATCH)]
        rng.shuffle(batches)
        start, total = time.time(), 0.0
        for k, chunk in enumerate(batches):
            p, m, v, t, loss = train_step(p, m, v, t, pack([train[i] for i in chunk]))
            if k % 20 == 0:
                total += float(loss)
        secs = time.time() - start
        print(f"epoch {epoch}: loss {total / len(batches[::20]):.3f} (sampled), "
              f"{len(train) / secs:.0f} words/s, {tokens / secs:.0f} tokens/s")
    start = time.time()
    steps = max(len(w[1]) for w in train + test) + 1
    decoded = greedy(p, test, steps)
    secs = time.time() - start
    errors = sum(edit_distance(d, w[1]) for d, w in zip(decoded, test))
    per = errors / sum(len(w[1]) for w in test)
    wer = sum(d != w[1] for d, w in zip(decoded, test)) / len(test)
    print(f"decoded {len(test)} words at {len(test) / secs:.0f} words/s")
    print(f"PER: {100 * per:.1f}% WER: {100 * wer:.1f}%")


if __name__ == "__main__":
    main()
