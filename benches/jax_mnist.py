#!/usr/bin/env python3
"""The JAX/XLA-CPU baseline of issue 15: examples/mnist.rs's mlp and cnn, same configuration
(and of issue 10: examples/mnist_rows.rs's LSTM, `--model lstm`).

    python3 benches/jax_mnist.py --model cnn [--data ../shared/data/mnist-10k] [--epochs 10]

Same as `cargo run --release --example mnist -- --model cnn`: inputs scaled by 1/255, the
mlp 784-400-400-10 (relu) or the cnn conv 8 5x5 stride 2 same relu, conv 16 5x5 stride 2
same relu, dense 10; glorot-uniform weights, zero biases; softmax cross-entropy, mean over
the batch; plain SGD lr 0.2, batch 64, reshuffled every epoch, the last partial batch kept;
the test split evaluated after every epoch (loss and error), as wgrad's `Trainer::fit`
does. `--model lstm` is mnist_rows' configuration instead: each digit 28 steps of 28 pixels,
LSTM(128) (gates g, i, f, o, 1 added to the forget gate; glorot-uniform input weights,
orthogonal recurrent weights, zero biases) -> last state -> dense 10, Adam lr 1e-3. Prints one line per epoch and `test error: x.xx%`. Time it as a whole process
(`/usr/bin/time`), as the issue measures wgrad. Needs `pip install jax` (CPU).
"""
import argparse
import gzip
import os
import time

import numpy as np


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(directory):
    def split(prefix):
        x = read_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"))
        y = read_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"))
        return x.reshape(len(x), 784).astype(np.float32), np.eye(10, dtype=np.float32)[y]

    return split("train"), split("t10k")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="cnn", choices=["mlp", "cnn", "lstm"])
    ap.add_argument("--data", default="../shared/data/mnist-10k")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=None, help="0.2 (SGD), lstm 1e-3 (Adam)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.lr is None:
        args.lr = 1e-3 if args.model == "lstm" else 0.2
    start = time.time()

    import jax
    import jax.numpy as jnp

    (xtr, ytr), (xte, yte) = load(args.data)
    key = jax.random.PRNGKey(args.seed)

    def glorot(key, shape, fan_in, fan_out):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return jax.random.uniform(key, shape, jnp.float32, -limit, limit)

    keys = jax.random.split(key, 4)
    if args.model == "mlp":
        sizes = [784, 400, 400, 10]
        params = [
            (glorot(keys[i], (a, b), a, b), jnp.zeros(b))
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))
        ]

        def forward(params, x):
            h = x / 255.0
            for w, b in params[:-1]:
                h = jax.nn.relu(h @ w + b)
            w, b = params[-1]
            return h @ w + b

    elif args.model == "lstm":
        hn = 128
        orthogonal = jax.nn.initializers.orthogonal()
        params = [
            (glorot(keys[0], (28, 4 * hn), 28, 4 * hn), orthogonal(keys[1], (hn, 4 * hn)),
             jnp.zeros(4 * hn)),
            (glorot(keys[2], (hn, 10), hn, 10), jnp.zeros(10)),
        ]

        def forward(params, x):
            (w, u, b), (wd, bd) = params
            xs = (x / 255.0).reshape(-1, 28, 28).swapaxes(0, 1) @ w + b  # [28, batch, 4H]

            def step(carry, z):
                h, c = carry
                g, i, f, o = jnp.split(z + h @ u, 4, axis=-1)
                c = jax.nn.sigmoid(f + 1.0) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
                return (jnp.tanh(c) * jax.nn.sigmoid(o), c), None

            zeros = jnp.zeros((x.shape[0], hn))
            (h, _), _ = jax.lax.scan(step, (zeros, zeros), xs)
            return h @ wd + bd

    else:
        params = [
            (glorot(keys[0], (8, 1, 5, 5), 25, 200), jnp.zeros(8)),
            (glorot(keys[1], (16, 8, 5, 5), 200, 400), jnp.zeros(16)),
            (glorot(keys[2], (16 * 7 * 7, 10), 784, 10), jnp.zeros(10)),
        ]

        def conv(x, w, b):
            y = jax.lax.conv_general_dilated(
                x, w, (2, 2), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW")
            )
            return jax.nn.relu(y + b[None, :, None, None])

        def forward(params, x):
            h = (x / 255.0).reshape(-1, 1, 28, 28)
            h = conv(h, *params[0])
            h = conv(h, *params[1])
            w, b = params[2]
            return h.reshape(h.shape[0], -1) @ w + b

    def losses(params, x, y):
        z = forward(params, x)
        loss = -jnp.sum(y * jax.nn.log_softmax(z), axis=-1)
        err = (jnp.argmax(z, -1) != jnp.argmax(y, -1)).astype(jnp.float32)
        return loss, err

    def mean_loss(params, x, y):
        loss, err = losses(params, x, y)
        return jnp.mean(loss), err

    @jax.jit
    def step(params, x, y):
        (loss, err), grads = jax.value_and_grad(mean_loss, has_aux=True)(params, x, y)
        params = jax.tree_util.tree_map(lambda p, g: p - args.lr * g, params, grads)
        return params, loss, jnp.mean(err)

    # Adam (the lstm's learner): first and second moments, the step count.
    moments = jax.tree_util.tree_map(jnp.zeros_like, (params, params))

    @jax.jit
    def adam_step(params, moments, t, x, y):
        (loss, err), grads = jax.value_and_grad(mean_loss, has_aux=True)(params, x, y)
        m, v = moments
        m = jax.tree_util.tree_map(lambda m, g: 0.9 * m + 0.1 * g, m, grads)
        v = jax.tree_util.tree_map(lambda v, g: 0.999 * v + 0.001 * g * g, v, grads)
        scale = args.lr * jnp.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        params = jax.tree_util.tree_map(
            lambda p, m, v: p - scale * m / (jnp.sqrt(v) + 1e-8), params, m, v
        )
        return params, (m, v), loss, jnp.mean(err)

    @jax.jit
    def evaluate(params, x, y):
        loss, err = losses(params, x, y)
        return jnp.sum(loss), jnp.sum(err)

    rng = np.random.default_rng(args.seed)
    n = len(xtr)
    t = 0
    for epoch in range(1, args.epochs + 1):
        t0 = time.time()
        order = rng.permutation(n)
        tl, te, seen = 0.0, 0.0, 0
        for i in range(0, n, args.batch):
            idx = order[i : i + args.batch]
            if args.model == "lstm":
                t += 1
                params, moments, loss, err = adam_step(params, moments, t, xtr[idx], ytr[idx])
            else:
                params, loss, err = step(params, xtr[idx], ytr[idx])
            tl += float(loss) * len(idx)
            te += float(err) * len(idx)
            seen += len(idx)
        vl, ve = 0.0, 0.0
        for i in range(0, len(xte), 500):
            l, e = evaluate(params, xte[i : i + 500], yte[i : i + 500])
            vl, ve = vl + float(l), ve + float(e)
        rate = seen / (time.time() - t0)
        print(
            f"epoch {epoch:3}: train loss {tl / seen:.4f} metric {te / seen:.4f} | "
            f"test loss {vl / len(xte):.4f} metric {ve / len(xte):.4f} | {rate:.0f} examples/s"
        )
    print(f"test error: {100 * ve / len(xte):.2f}%")
    print(f"jax {jax.__version__} on {jax.devices()[0]}, {time.time() - start:.1f} s in main")


if __name__ == "__main__":
    main()
