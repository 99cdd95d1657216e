"""onnxruntime sessions over the files ``vlc export`` writes, and the metadata they carry (``vlc.onnx_format``)."""

import json
from pathlib import Path
from typing import Any

from vlc.errors import UserError
from vlc.onnx_format import FORMAT, KINDS, METADATA_KEY, VERSION

INSTALL = "pip install onnxruntime (or pip install 'vlc[export]')"


def onnxruntime() -> Any:
    """The ``onnxruntime`` module.

    Raises:
        UserError: it is not installed, naming the command that installs it.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError(f"python -m vlc.onnx_predict needs onnxruntime (not installed): {INSTALL}") from None
    return ort


def open_session(path: str | Path, threads: int | None = None) -> Any:
    """An onnxruntime ``InferenceSession`` of ``path`` on the CPU with ``threads`` threads (None: onnxruntime's).

    Raises:
        UserError: the file is missing or is not an ONNX model onnxruntime can load.
    """
    ort = onnxruntime()
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file (expected a .onnx file written by vlc export)")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.log_severity_level = 3  # errors only: no warnings about unused initializers
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime's InvalidProtobuf, Fail, ...
        text = " ".join(str(err).split())[:200]
        raise UserError(f"{path}: not an ONNX model onnxruntime can run ({text})") from None


def metadata(session: Any, path: str | Path) -> dict:
    """The ``vlc`` metadata of an exported file, checked for its format, version and kind.

    Raises:
        UserError: the file was not written by ``vlc export`` (or by a newer one).
    """
    raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    try:
        record = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        record = None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise UserError(f"{path}: not a model written by vlc export (no {METADATA_KEY!r} metadata of {FORMAT})")
    if record.get("version") != VERSION or record.get("kind") not in KINDS:
        raise UserError(
            f"{path}: written by another vlc export (format version {record.get('version')}, kind "
            f"{record.get('kind')!r}); this predictor reads version {VERSION}, {' and '.join(KINDS)}"
        )
    return record
