"""``precision: auto``, the default: bf16-mixed where bfloat16 is native, 16-mixed on CUDA without it, else 32-true."""

import pytest
import yaml
from helpers import run_cli, run_fails, tiny_classifier_fit, write_tinyimagenet30

import vlc.trainer
from vlc.trainer import auto_precision, native_bf16_cpu


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        ("fpu sse2 avx2 fma avx512f avx512bw", None),  # AVX-512 without BF16: bfloat16 emulated
        ("fpu avx2 avx512f avx512_bf16 avx512_vnni", "AVX-512 BF16"),
        ("fpu avx2 amx_tile amx_bf16", "AMX"),
        ("fpu avx2 avx512_bf16x", None),  # a whole flag, not a prefix
    ],
)
def test_native_bfloat16_is_read_from_the_cpu_flags(tmp_path, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    assert native_bf16_cpu(cpuinfo) == native


def test_no_cpuinfo_means_no_native_bfloat16(tmp_path):
    assert native_bf16_cpu(tmp_path / "missing") is None  # macOS, Windows: float32, correct if not the fastest


def _machine(monkeypatch, cpu: str | None, cuda: bool = False, cuda_bf16: bool = False) -> None:
    monkeypatch.setattr(vlc.trainer, "native_bf16_cpu", lambda: cpu)
    monkeypatch.setattr(vlc.trainer.torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(vlc.trainer.torch.cuda, "get_device_name", lambda: "Tesla T4" if not cuda_bf16 else "H100")
    monkeypatch.setattr(vlc.trainer.torch.cuda, "is_bf16_supported", lambda including_emulation=True: cuda_bf16)


@pytest.mark.parametrize(
    ("cpu", "cuda", "cuda_bf16", "accelerator", "expected"),
    [
        ("AVX-512 BF16", False, False, "auto", "bf16-mixed"),
        ("AMX", False, False, "cpu", "bf16-mixed"),
        (None, False, False, "auto", "32-true"),  # an AVX2 laptop: float32 without asking
        (None, True, True, "auto", "bf16-mixed"),  # an H100
        (None, True, False, "gpu", "16-mixed"),  # a T4 or V100
        ("AVX-512 BF16", True, False, "cpu", "bf16-mixed"),  # the CPU asked for, beside a GPU
        (None, True, True, "cpu", "32-true"),
    ],
)
def test_auto_picks_what_the_hardware_runs_natively(monkeypatch, cpu, cuda, cuda_bf16, accelerator, expected):
    _machine(monkeypatch, cpu, cuda, cuda_bf16)
    precision, why = auto_precision(accelerator)
    assert precision == expected and why


@pytest.mark.parametrize(("cpu", "used"), [(None, "32-true"), ("AVX-512 BF16", "bf16-mixed")])
def test_a_fit_chooses_prints_and_records_its_precision(tmp_path, monkeypatch, capsys, cpu, used):
    _machine(monkeypatch, cpu)
    monkeypatch.chdir(tmp_path)
    args = [
        a
        for a in tiny_classifier_fit(write_tinyimagenet30(tmp_path / "data").parent)
        if not a.startswith("--trainer.precision")
    ]
    code, err = run_cli(capsys, [*args, "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"])
    assert code == 0, err
    (run,) = (tmp_path / "logs").rglob("run.yaml")
    assert yaml.safe_load(run.read_text())["precision"] == {
        "asked": "auto",
        "used": used,
        "why": auto_precision("auto")[1],
    }
    assert f"precision: auto -> {used} (" in err  # printed once


def test_a_precision_given_is_used_as_given(tmp_path, monkeypatch, capsys):
    _machine(monkeypatch, None)  # no native bfloat16: auto would pick float32
    monkeypatch.chdir(tmp_path)
    args = tiny_classifier_fit(write_tinyimagenet30(tmp_path / "data").parent, "--trainer.precision=bf16-mixed")
    code, err = run_cli(capsys, [*args, "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1"])
    assert code == 0, err
    (run,) = (tmp_path / "logs").rglob("run.yaml")
    assert yaml.safe_load(run.read_text())["precision"] == {"asked": "bf16-mixed", "used": "bf16-mixed"}
    assert "precision: auto" not in err


def test_an_unknown_precision_is_one_line_naming_the_key(tmp_path, capsys):
    err = run_fails(capsys, tiny_classifier_fit(tmp_path, "--trainer.precision=fp8"))
    assert err.startswith("vlc: error: trainer.precision: expected auto or one of bf16-mixed, 16-mixed, 32-true,")
    assert err.endswith("; got fp8\n") and len(err.splitlines()) == 1
