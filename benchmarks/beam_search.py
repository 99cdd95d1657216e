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

import torch
from common import best_time

from vlc.models.attention_decoder import AttentionLSTMDecoder
from vlc.models.decoding import beam_search, beam_search_one_by_one, greedy_decode
from vlc.models.lstm_decoder import LSTMDecoder
from vlc.vocabulary import Vocabulary


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


def make_decoder(
    kind: str = "lstm",
    vocab_size: int = 3000,
    feature_dim: int = 2048,
    embed_dim: int = 256,
    hidden_dim: int = 512,
    batch_size: int = 64,
    grid: int = 49,
    device: str = "cpu",
    seed: int = 0,
) -> tuple[torch.nn.Module, torch.Tensor]:
    """A decoder with random weights in eval mode and random image features for it: ``(B, F)``, or ``(B, N, F)``."""
    torch.manual_seed(seed)
    if kind == "lstm":
        decoder = LSTMDecoder(vocab_size, feature_dim, Vocabulary.PAD, embed_dim, hidden_dim)
        features = torch.randn(batch_size, feature_dim)
    else:
        decoder = AttentionLSTMDecoder(vocab_size, feature_dim, Vocabulary.PAD, embed_dim, hidden_dim)
        features = torch.randn(batch_size, grid, feature_dim)
    return decoder.to(device).eval(), features.to(device)


def search_options(beam_width: int, max_len: int) -> dict:
    """The keyword arguments of ``beam_search`` (the special tokens of ``Vocabulary``)."""
    ids = {"start_idx": Vocabulary.START, "end_idx": Vocabulary.END, "pad_idx": Vocabulary.PAD}
    return {"beam_width": beam_width, "max_len": max_len, **ids}


def compare(
    decoder: torch.nn.Module, features: torch.Tensor, beam_width: int, max_len: int, repeats: int, bf16: bool = False
) -> dict:
    """Time greedy decoding, batched beam search and one-at-a-time beam search on the same features.

    Returns:
        ``seconds`` (best of ``repeats`` after one warm-up call) of ``greedy``, ``batched`` and ``one_by_one``;
        ``differ``: captions that differ between the two beam searches; ``max_score_diff``; ``mean_length`` of
        the batched captions in tokens.
    """
    device, kwargs = features.device, search_options(beam_width, max_len)
    greedy_kwargs = {k: v for k, v in kwargs.items() if k != "beam_width"}
    runs = {
        "greedy": lambda: greedy_decode(decoder, features, **greedy_kwargs),
        "batched": lambda: beam_search(decoder, features, **kwargs),
        "one_by_one": lambda: beam_search_one_by_one(decoder, features, **kwargs),
    }
    precision = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with precision:
        results = {name: best_time(fn, repeats, device) for name, fn in runs.items()}
    (tokens, scores), (ref_tokens, ref_scores) = results["batched"][1], results["one_by_one"][1]
    L = max(tokens.size(1), ref_tokens.size(1))
    tokens, ref_tokens = (
        torch.nn.functional.pad(t, (0, L - t.size(1)), value=decoder.pad_idx) for t in (tokens, ref_tokens)
    )
    return {
        "seconds": {name: seconds for name, (seconds, _) in results.items()},
        "differ": int((tokens != ref_tokens).any(dim=1).sum()),
        "max_score_diff": (scores - ref_scores).abs().max().item(),
        "mean_length": (tokens != decoder.pad_idx).sum(dim=1).float().mean().item(),
    }


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    B, K = args.batch_size, args.beam_width
    sizes = {k: getattr(args, k) for k in ("vocab_size", "feature_dim", "embed_dim", "hidden_dim", "grid", "seed")}
    decoder, features = make_decoder(args.decoder, batch_size=B, device=args.device, **sizes)
    result = compare(decoder, features, K, args.max_len, args.repeats, args.bf16)

    print(
        f"decoder={args.decoder} batch={B} width={K} max_len={args.max_len} vocab={args.vocab_size} "
        f"embed={args.embed_dim} hidden={args.hidden_dim} device={args.device} threads={torch.get_num_threads()} "
        f"{'bf16 autocast' if args.bf16 else 'float32'} "
        "(random weights)"
    )
    print(f"{'method':<24}{'seconds':>10}{'captions/s':>12}{'speed-up':>10}")
    names = {"greedy": "greedy (batched)", "batched": f"beam K={K} batched", "one_by_one": f"beam K={K} one-by-one"}
    reference = result["seconds"]["one_by_one"]
    for name, seconds in result["seconds"].items():
        print(f"{names[name]:<24}{seconds:>10.3f}{B / seconds:>12.1f}{reference / seconds:>9.1f}x")
    differ, score_diff = result["differ"], result["max_score_diff"]
    print(f"captions that differ batched vs one-by-one: {differ} of {B} (max |score diff| = {score_diff:.2e})")
    print(f"mean caption length: {result['mean_length']:.1f} tokens")
    if differ and not args.bf16:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
