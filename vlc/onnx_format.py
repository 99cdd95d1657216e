"""What ``vlc export`` writes and ``python -m vlc.onnx_predict`` reads: file names and the metadata, without torch.

A classifier is one ONNX file: input ``images``, uint8 ``(N, 3, H, W)`` of any ``N``, ``H`` and ``W``; output
``probabilities`` ``(N, K)`` float32 (preprocessing and test-time averaging inside). A captioner is three files
beside one another: ``NAME.onnx``, the encoder (``images`` -> the decoder's initial state and the per-image memory it
attends over), ``NAME.step.onnx``, one decoder step (``tokens`` ``(M,)`` int64, the state and the memory, one row per
hypothesis -> ``log_probs`` ``(M, V)`` float32 and the new state), and ``NAME.vocab.json``, the vocabulary.

Every ONNX file carries the metadata entry ``vlc`` (:data:`METADATA_KEY`): a JSON object with ``format``
(:data:`FORMAT`), ``version``, ``kind`` (``classification`` or ``captioning``), ``vlc_version``, ``image_size``
(the side the predictor resizes images to, as ``vlc predict``'s ``data.image_size``), and per kind:
``class_names``, ``top_k``, ``flip_average``, ``translate_average``; or ``decoding`` (the checkpoint's
``model.decoding``), ``state`` and ``memory`` (the names of those inputs and outputs), ``step`` and ``vocab`` (the
sibling files' names). The same object is also written as readable entries (``class_names``, ``image_size``, ...).
"""

from pathlib import Path

FORMAT = "vlc.onnx"
VERSION = 1
METADATA_KEY = "vlc"
KINDS = ("classification", "captioning")


def step_file(output: str | Path) -> Path:
    """The decoder step beside a captioner's encoder ``NAME.onnx``: ``NAME.step.onnx``."""
    output = Path(output)
    return output.with_name(output.stem + ".step.onnx")


def vocab_file(output: str | Path) -> Path:
    """The vocabulary beside a captioner's encoder ``NAME.onnx``: ``NAME.vocab.json``."""
    output = Path(output)
    return output.with_name(output.stem + ".vocab.json")
