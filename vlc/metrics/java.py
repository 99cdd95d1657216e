"""Whether a Java tool that pycocoevalcap ships (METEOR, the PTB tokenizer) can run on this machine."""

import functools
import shutil
import subprocess
from pathlib import Path


@functools.cache
def java_runs(jar: Path) -> bool:
    """Return whether ``java`` starts and ``jar`` is installed (checked once per jar)."""
    java = shutil.which("java")
    if java is None or not jar.is_file():
        return False
    try:
        return subprocess.run([java, "-version"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
