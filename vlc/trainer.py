"""vlc's ``Trainer``: Lightning's, with ``precision: auto`` (the default) choosing what the hardware runs fast.

bfloat16 is only worth it where it is native: on a CPU without AVX-512 BF16 or AMX (AVX2 laptops and cloud VMs)
``bf16-mixed`` is about 20x slower than float32, and a GPU without bfloat16 (T4, V100) emulates it or fails.
"""

import re
import sys
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only

Precision = Literal[
    "auto", "bf16-mixed", "16-mixed", "32-true", "64-true", "bf16-true", "16-true", "transformer-engine",
    "transformer-engine-float16", "bf16", "16", "32", "64", 16, 32, 64,
]  # fmt: skip
"""``auto`` or one of Lightning's precisions."""


NATIVE_BF16 = {"avx512_bf16": "AVX-512 BF16", "amx_bf16": "AMX"}
"""The CPU flags (``/proc/cpuinfo``) of native bfloat16 matrix products, and their names."""


def native_bf16_cpu(cpuinfo: str | Path = "/proc/cpuinfo") -> str | None:
    """The name of this CPU's native bfloat16 instructions (AVX-512 BF16, AMX); None without, or where unknown."""
    try:
        flags = set(re.findall(r"\w+", Path(cpuinfo).read_text()))
    except OSError:
        return None
    return next((name for flag, name in NATIVE_BF16.items() if flag in flags), None)


def auto_precision(accelerator: object) -> tuple[str, str]:
    """The precision ``auto`` means for ``accelerator`` (the trainer's), and why.

    ``bf16-mixed`` where bfloat16 is native (a CPU with AVX-512 BF16 or AMX, a CUDA device that supports it),
    ``16-mixed`` on a CUDA device without bfloat16, ``32-true`` otherwise (MPS, other accelerators).
    """
    name = accelerator if isinstance(accelerator, str) else ""
    if name in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        device = torch.cuda.get_device_name()
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return "bf16-mixed", f"{device} supports bfloat16"
        return "16-mixed", f"{device} has no bfloat16"
    if name == "auto" and torch.backends.mps.is_available():
        return "32-true", "Apple MPS"
    if name in ("auto", "cpu"):
        native = native_bf16_cpu()
        if native:
            return "bf16-mixed", f"this CPU has {native}"
        return "32-true", "this CPU has no native bfloat16: bf16-mixed would be about 20x slower"
    return "32-true", f"accelerator {accelerator!r}"


@rank_zero_only
def _say(text: str) -> None:
    print(text, file=sys.stderr)  # beside Lightning's own lines about the devices


class Trainer(L.Trainer):
    """Lightning's ``Trainer`` whose ``precision`` may be ``auto`` (:func:`auto_precision`); the choice is printed.

    Args:
        precision: ``auto`` (the default) or any of Lightning's precisions, used as given.
        **kwargs: every other ``lightning.Trainer`` argument.
    """

    def __init__(self, *, precision: Precision = "auto", **kwargs) -> None:
        self.precision_choice = {"asked": precision}
        if precision == "auto":
            precision, why = auto_precision(kwargs.get("accelerator", "auto"))
            self.precision_choice["why"] = why
            _say(f"precision: auto -> {precision} ({why})")
        super().__init__(precision=precision, **kwargs)
        self.precision_choice["used"] = self.precision
