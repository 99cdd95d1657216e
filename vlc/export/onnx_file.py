"""``torch.onnx.export`` as vlc uses it, and the check that an exported file computes what the model computes.

torch 2.14's exporter is the dynamo one: it needs onnxscript, writes the weights to an external ``.onnx.data`` file
unless told not to, freezes the batch axis when the example batch has one image (pytorch#157621), and has produced
wrong outputs (pytorch#166797). So every export here is in evaluation mode, outside autocast, in float32, from an
example batch of at least 2 with dynamic axes, into one file, and is then run by onnxruntime on another batch size
and compared with the torch module before the file takes its name.
"""

import contextlib
import importlib
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vlc.errors import UserError
from vlc.onnx_format import METADATA_KEY

EXTRA = ("onnx", "onnxscript", "onnxruntime")
INSTALL = "pip install 'vlc[export]'"
TOLERANCE = 1e-4
"""The largest difference between an exported file's outputs and the torch module's that an export accepts."""


def require_extra() -> None:
    """Stop in one line when the ``export`` extra (onnx, onnxscript, onnxruntime) is not installed.

    Raises:
        UserError: naming the missing packages and the command that installs them.
    """
    missing = []
    for name in EXTRA:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise UserError(f"vlc export needs {', '.join(missing)} (not installed): {INSTALL}")


def export_onnx(
    module: nn.Module,
    inputs: dict[str, torch.Tensor],
    outputs: list[str],
    dynamic: dict[str, dict[int, torch.export.Dim]],
    path: Path,
    metadata: dict,
    check_inputs: dict[str, torch.Tensor],
) -> float:
    """Export ``module(**inputs)`` to the single ONNX file ``path`` with ``metadata``, once its outputs are checked.

    Args:
        module: the module to export (set to evaluation mode here).
        inputs: the example inputs by name (a batch of 2 or more on every dynamic batch axis).
        outputs: the names of the module's outputs, in order.
        dynamic: per input, its dynamic axes.
        path: the file to write; nothing is there unless the check passes.
        metadata: stored as JSON under ``METADATA_KEY`` and as readable entries, one per key.
        check_inputs: other inputs (another batch size) the exported file and ``module`` must agree on.

    Returns:
        The largest absolute difference between the file's outputs and the module's on ``check_inputs``.

    Raises:
        UserError: the exporter fails, or the file's outputs differ from the module's by more than ``TOLERANCE``.
    """
    import onnx

    module.eval()
    tmp = path.with_name(path.name + ".tmp")
    try:
        with torch.no_grad(), torch.autocast("cpu", enabled=False), _quiet_exporter():
            program = torch.onnx.export(
                module,
                kwargs=inputs,
                input_names=list(inputs),
                output_names=outputs,
                dynamic_shapes=dynamic,
                external_data=False,
                dynamo=True,
                optimize=True,
                verbose=False,
            )
        proto = program.model_proto
        entries = {METADATA_KEY: json.dumps(metadata, ensure_ascii=False)}
        entries |= {k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in metadata.items()}
        onnx.helper.set_model_props(proto, entries)
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save_model(proto, tmp)
    except UserError:
        raise
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise UserError(f"--output: cannot write {path} ({err.strerror or err})") from None
    except Exception as err:  # the exporter's own failures: a layer it cannot translate, the 2 GB protobuf limit
        tmp.unlink(missing_ok=True)
        text = " ".join(str(err).split())[:300]
        raise UserError(f"torch.onnx.export failed for {path.name}: {type(err).__name__}: {text}") from None
    try:
        try:
            difference = compare(module, tmp, check_inputs, outputs)
        except Exception as err:  # onnxruntime refuses the file: the exporter wrote an invalid model
            text = " ".join(str(err).split())[:300]
            raise UserError(f"{path}: onnxruntime cannot run the exported model ({text}); not written") from None
        if not difference <= TOLERANCE:
            raise UserError(
                f"{path}: the exported model's outputs differ from the checkpoint's by {difference:.3g} (more than "
                f"{TOLERANCE:g}); not written. An exporter bug: try another torch or onnxscript version"
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return difference


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter's progress lines and warnings kept off the terminal.

    They are shared axis names, deprecations inside torch, LSTM weights traced as constants: what matters about the
    result is what :func:`compare` finds.
    """
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def compare(module: nn.Module, path: Path, inputs: dict[str, torch.Tensor], outputs: list[str]) -> float:
    """The largest absolute difference between ``module``'s outputs and those of the ONNX file ``path``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(outputs, {name: value.numpy() for name, value in inputs.items()})
    with torch.no_grad():
        expected = module(**inputs)
    expected = expected if isinstance(expected, tuple) else (expected,)
    return max(float(np.abs(g - e.numpy()).max(initial=0)) for g, e in zip(got, expected))
