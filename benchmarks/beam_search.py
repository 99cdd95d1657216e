"""Benchmark batched beam search against one-image-at-a-time beam search.

The decoder has RANDOM weights: the timings measure decoding cost, not caption quality. With random weights
``<end>`` is rarely chosen, so most hypotheses run to ``--max-len`` (the worst case for both methods).

    python benchmarks/beam_search.py                      # LSTMDecoder, batch 64, width 5
    python benchmarks/beam_search.py --decoder attention  # AttentionLSTMDecoder over a 7x7 grid
    python benchmarks/beam_search.py --bf16               # both under bfloat16 autocast

In float32 the batched and one-by-one captions must be identical (the script fails otherwise). Under bfloat16
the rounding of a matrix product depends on its batch size, so a near-tie between two words can go the other
way: the number of differing captions is reported instead.
"""

import argparse
import contextlib
import time

import torch

from vlc.data.vocab import Vocabulary
from vlc.models.attention_decoder import AttentionLSTMDecoder
from vlc.models.decoding import beam_search, beam_search_one_by_one, greedy_decode
from vlc.models.lstm_decoder import LSTMDecoder


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decoder", choices=["lstm", "attention"], default="lstm")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--beam-width", type=int, default=5)
    parser.add_argument("--max-len", type=int, default=20)
    parser.add_argument("--vocab-size", type=int, default=3000)
    parser.add_argument("--feature-dim", type=int, default=2048)
    parser.add_argument("--grid", type=int, default=49, help="spatial positions N for the attention decoder")
    parser.add_argument("--embed-dim", type=int, default=256)
    parser.add_argument("--hidden-dim", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method; the best is reported")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="run both methods under bfloat16 autocast")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def best_time(fn, repeats: int, device: torch.device) -> tuple[float, object]:
    """Best wall-clock time of ``repeats`` calls (after one warm-up call) and the last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    B, K = args.batch_size, args.beam_width
    if args.decoder == "lstm":
        decoder = LSTMDecoder(args.vocab_size, args.feature_dim, Vocabulary.PAD, args.embed_dim, args.hidden_dim)
        features = torch.randn(B, args.feature_dim)
    else:
        decoder = AttentionLSTMDecoder(
            args.vocab_size, args.feature_dim, Vocabulary.PAD, args.embed_dim, args.hidden_dim
        )
        features = torch.randn(B, args.grid, args.feature_dim)
    decoder, features = decoder.to(device).eval(), features.to(device)
    ids = {"start_idx": Vocabulary.START, "end_idx": Vocabulary.END, "pad_idx": Vocabulary.PAD}
    kwargs = {"beam_width": K, "max_len": args.max_len, **ids}

    runs = {
        "greedy (batched)": lambda: (greedy_decode(decoder, features, args.max_len, **ids), None),
        f"beam K={K} batched": lambda: beam_search(decoder, features, **kwargs),
        f"beam K={K} one-by-one": lambda: beam_search_one_by_one(decoder, features, **kwargs),
    }
    precision = torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext()
    with precision:
        results = {name: best_time(fn, args.repeats, device) for name, fn in runs.items()}

    print(
        f"decoder={args.decoder} batch={B} width={K} max_len={args.max_len} vocab={args.vocab_size} "
        f"embed={args.embed_dim} hidden={args.hidden_dim} device={device} threads={torch.get_num_threads()} "
        f"{'bf16 autocast' if args.bf16 else 'float32'} "
        "(random weights)"
    )
    print(f"{'method':<24}{'seconds':>10}{'captions/s':>12}{'speed-up':>10}")
    reference = results[f"beam K={K} one-by-one"][0]
    for name, (seconds, _) in results.items():
        print(f"{name:<24}{seconds:>10.3f}{B / seconds:>12.1f}{reference / seconds:>9.1f}x")

    (tokens, scores), (ref_tokens, ref_scores) = (
        results[f"beam K={K} batched"][1],
        results[f"beam K={K} one-by-one"][1],
    )
    L = max(tokens.size(1), ref_tokens.size(1))
    tokens, ref_tokens = (
        torch.nn.functional.pad(t, (0, L - t.size(1)), value=decoder.pad_idx) for t in (tokens, ref_tokens)
    )
    differ = int((tokens != ref_tokens).any(dim=1).sum())
    max_diff = (scores - ref_scores).abs().max().item()
    lengths = (tokens != decoder.pad_idx).sum(dim=1).float()
    print(f"captions that differ batched vs one-by-one: {differ} of {B} (max |score diff| = {max_diff:.2e})")
    print(f"mean caption length: {lengths.mean():.1f} tokens")
    if differ and not args.bf16:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
