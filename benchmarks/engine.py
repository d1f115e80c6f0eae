"""bbans engine throughput and size overhead (issue: the bits-back ANS engine).

    python -m benchmarks.engine [--quick]

Push and pop rates in symbols/s at 1k, 10k and 100k lanes for: raw message push/pop with
given intervals, a shared 256-symbol table, Bernoulli, discretised logistic and the bucketed
Gaussian. Then the byte overhead over the exact information content, and the cost of a wide
head (10^6 symbols on 10^4 lanes vs one lane). If constriction is installed, the same symbols
go through its ANS coder for comparison. Single thread (numpy's element-wise loops are).
"""
from __future__ import annotations

import argparse
import copy
import time

import numpy as np

from bbzip import bbans
from bbzip.bbans import Message
from bbzip.bbans import distributions as dist

from .common import markdown_table, write_results


def _time(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _cases(lanes: int, steps: int, rng):
    shape = (lanes, steps)
    shared_probs = rng.dirichlet(np.full(256, 0.5))
    logits = rng.normal(0, 3, shape)
    mean, log_scale = rng.uniform(0, 255, shape), rng.uniform(-1, 3, shape)
    g_mean, g_std = rng.normal(0, 1, shape), rng.uniform(0.05, 0.5, shape)
    return {
        "shared 256-symbol table": (lambda: dist.Categorical(shared_probs, 16, shape),
                                    rng.choice(256, size=shape, p=shared_probs), 16),
        "Bernoulli (logits)": (lambda: dist.Bernoulli(logits=bbans.to_fixed(logits, 12), precision=16),
                               (rng.random(shape) < 1 / (1 + np.exp(-logits))).astype(np.int64), 16),
        "discretised logistic": (lambda: dist.DiscretisedLogistic(bbans.to_fixed(mean, 12), bbans.to_fixed(log_scale, 12), 24),
                                 np.clip(np.round(mean + np.exp(log_scale) * rng.logistic(size=shape)), 0, 255).astype(np.int64), 24),
        "bucketed Gaussian (12 bits)": (lambda: dist.BucketedGaussian(bbans.to_fixed(g_mean, 16), bbans.to_fixed(g_std, 16), 12, 24),
                                        rng.integers(1500, 2600, size=shape), 24),
    }


def _information_bits(distribution, symbols) -> float:
    _, freq = distribution.interval(symbols)
    return float(np.sum(distribution.precision - np.log2(freq.astype(np.float64))))


def throughput(total: int, lane_counts, rng) -> list[list]:
    rows = []
    for lanes in lane_counts:
        steps = max(1, total // lanes)
        n = lanes * steps
        # Raw message operations with intervals given (no distribution work).
        precision = 16
        freq = rng.integers(1, 1 << 12, size=(steps, lanes), dtype=np.uint64)
        start = (rng.random((steps, lanes)) * ((1 << precision) - freq)).astype(np.uint64)

        def raw_push():
            m = Message.empty((lanes,))
            for t in range(steps):
                m = m.push(start[t], freq[t], precision)
            return m

        pushed = raw_push()

        def raw_pop():
            m = pushed
            for t in reversed(range(steps)):
                m = m.pop(m.peek(precision), start[t], freq[t], precision)
            return m

        rows.append(["raw push/pop", lanes, n / _time(raw_push), n / _time(raw_pop)])
        for name, (make, symbols, _) in _cases(lanes, steps, rng).items():
            codec = bbans.from_distribution(make())
            encoded = codec.push(Message.empty((lanes,)), symbols)
            push_time = _time(lambda: codec.push(Message.empty((lanes,)), symbols))
            pop_time = _time(lambda: codec.pop(encoded))
            rows.append([name, lanes, n / push_time, n / pop_time])
    return rows


def _with_params(distribution, rearrange, shape):
    """A copy of the distribution whose parameter arrays (broadcast to its shape) went through
    `rearrange`, now of `shape`."""
    copied = copy.copy(distribution)
    if hasattr(copied, "params"):
        copied.params = tuple(rearrange(np.broadcast_to(p, distribution.shape)) for p in distribution.params)
    if hasattr(copied, "zero_freq"):
        copied.zero_freq = rearrange(np.broadcast_to(distribution.zero_freq, distribution.shape))
    copied.shape = tuple(shape)
    return copied


def make_one_lane(distribution, n: int):
    """The distribution with its parameters laid along one lane of n steps."""
    return _with_params(distribution, lambda p: p.reshape(1, n), (1, n))


def _push_grown(distribution, symbols) -> Message:
    """Code lane groups of 1, 1, 2, 4, ... lanes in turn, each grown from the words on the stack
    (Message.grow), as bbzip's model stream does; a group runs all its steps before the next."""
    lanes = symbols.shape[0]
    message, first = Message.empty((1,)), 0
    while first < lanes:
        end = min(lanes, max(1, 2 * first))
        if end > message.shape[0]:
            message = message.grow(end - message.shape[0])
        group = _with_params(distribution, lambda p: p[first:end], (end - first,) + tuple(distribution.shape[1:]))
        lanes_of_group = bbans.parallel([bbans.from_distribution(group)], [slice(first, end)])
        message, first = lanes_of_group.push(message, (symbols[first:end],)), end
    return message


def overhead(rng, lanes: int = 10_000, steps: int = 100) -> list[list]:
    rows = []
    for name, (make, symbols, _) in _cases(lanes, steps, rng).items():
        distribution = make()
        info = _information_bits(distribution, symbols)
        wide = len(bbans.from_distribution(distribution).push(Message.empty((lanes,)), symbols).to_bytes())
        grown = len(_push_grown(distribution, symbols).to_bytes())
        # The same symbols with the same parameters, one after another on a single lane.
        one = make_one_lane(distribution, lanes * steps)
        one_lane = len(bbans.from_distribution(one).push(Message.empty((1,)), symbols.reshape(1, -1)).to_bytes())
        rows.append([name, lanes * steps, info / 8, one_lane, 100 * (8 * one_lane / info - 1),
                     wide, 8 * (wide - one_lane) / lanes, grown, 8 * (grown - one_lane) / lanes,
                     100 * (grown / one_lane - 1)])
    return rows


def constriction_rates(total: int, lanes: int, rng) -> list[list]:
    try:
        import constriction
    except ImportError:
        return []
    rows = []
    probs = rng.dirichlet(np.full(256, 0.5))
    symbols = rng.choice(256, size=total, p=probs).astype(np.int32)
    model = constriction.stream.model.Categorical(probs, perfect=False)

    def encode():
        coder = constriction.stream.stack.AnsCoder()
        coder.encode_reverse(symbols, model)
        return coder

    coder = encode()
    compressed = coder.get_compressed()
    enc = _time(encode)
    dec = _time(lambda: constriction.stream.stack.AnsCoder(compressed).decode(model, total))
    ours = bbans.Categorical(probs, 16, (lanes, total // lanes))
    ours_symbols = symbols.reshape(lanes, -1)
    encoded = ours.push(Message.empty((lanes,)), ours_symbols)
    ours_enc = _time(lambda: ours.push(Message.empty((lanes,)), ours_symbols))
    ours_dec = _time(lambda: ours.pop(encoded))
    rows.append(["shared 256-symbol table", total / enc, total / dec, total / ours_enc, total / ours_dec,
                 (total / ours_enc) / (total / enc), (total / ours_dec) / (total / dec)])
    mean, std = rng.normal(0, 20, total), rng.uniform(1, 10, total)
    gauss_symbols = np.clip(np.round(mean + std * rng.normal(size=total)), -127, 127).astype(np.int32)
    gauss_model = constriction.stream.model.QuantizedGaussian(-127, 127)

    def encode_gauss():
        c = constriction.stream.stack.AnsCoder()
        c.encode_reverse(gauss_symbols, gauss_model, mean, std)
        return c

    gauss_compressed = encode_gauss().get_compressed()
    g_enc = _time(encode_gauss)
    g_dec = _time(lambda: constriction.stream.stack.AnsCoder(gauss_compressed).decode(gauss_model, mean, std))
    rows.append(["quantised Gaussian, per-symbol mean/std (constriction) vs discretised logistic (bbans)",
                 total / g_enc, total / g_dec, None, None, None, None])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^5 symbols instead of 10^6 (a smoke test)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    total = 100_000 if args.quick else 1_000_000
    lane_counts = (1_000, 10_000) if args.quick else (1_000, 10_000, 100_000)
    speed = throughput(total, lane_counts, rng)
    sizes = overhead(rng, lanes=1_000 if args.quick else 10_000, steps=100)
    versus = constriction_rates(total, 10_000 if not args.quick else 1_000, rng)
    sections = [
        (f"Throughput, {total:,} symbols, one thread (symbols/s)",
         markdown_table(["case", "lanes", "push", "pop"], speed)),
        ("Size: bytes vs the exact information content, and a wide head vs one lane",
         "One lane: every symbol on a single rANS lane. Fresh lanes: all lanes start at once from the "
         "virtual bottom (about 37 bits a lane: the 32-bit floor and the head's length). Grown lanes: "
         "each lane's floor is pulled off the stack (Message.grow), as bbzip codes; what remains is the "
         "entropy of a final rANS state, about 5 bits a lane.\n\n"
         + markdown_table(["case", "symbols", "information (bytes)", "one lane (bytes)", "one lane overhead %",
                           "fresh lanes (bytes)", "extra bits per fresh lane", "grown lanes (bytes)",
                           "extra bits per grown lane", "grown vs one lane %"], sizes)),
    ]
    if versus:
        sections.append(("constriction (Rust, one stream) vs bbans (numpy, 10k lanes), symbols/s",
                         markdown_table(["case", "constriction encode", "constriction decode", "bbans encode",
                                         "bbans decode", "encode ratio", "decode ratio"], versus)))
    path = write_results("engine" + ("-quick" if args.quick else ""), "bbans engine benchmark", sections,
                         {"throughput": speed, "overhead": sizes, "constriction": versus, "symbols": total})
    for heading, body in sections:
        print(f"\n{heading}\n{body}")
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
