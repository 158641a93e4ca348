"""One precision vocabulary: auto resolution per device, refusals that name the device, CPU flags."""

import pytest
import torch

from aaclip_med import precision as prec
from aaclip_med.precision import autocast, cpu_supports_bf16, precision_dtype, resolve_precision

CPU = torch.device("cpu")


def test_explicit_precisions_on_cpu():
    assert resolve_precision("fp32", CPU) == "fp32"
    assert resolve_precision("bf16", CPU) == "bf16"  # honoured even where emulated (warned)
    with pytest.raises(ValueError, match="fp16 autocast is for GPUs"):
        resolve_precision("fp16", CPU)
    with pytest.raises(ValueError, match="Unknown precision 'int4'"):
        resolve_precision("int4", CPU)


@pytest.mark.parametrize("native", [True, False])
def test_auto_follows_the_cpu_flags(monkeypatch, native):
    monkeypatch.setattr(prec, "cpu_supports_bf16", lambda: native)
    assert resolve_precision("auto", CPU) == ("bf16" if native else "fp32")


def test_emulated_bf16_is_named_in_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(prec, "cpu_supports_bf16", lambda: False)
    with caplog.at_level("WARNING", logger="aaclip_med.precision"):
        assert resolve_precision("bf16", CPU) == "bf16"
    assert "no native bf16" in caplog.text


def test_dtypes_and_autocast():
    assert precision_dtype("fp32") is None
    assert precision_dtype("bf16") is torch.bfloat16 and precision_dtype("fp16") is torch.float16
    with pytest.raises(ValueError, match="not a resolved precision"):
        precision_dtype("auto")
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast("bf16", CPU):
        assert (a @ b).dtype == torch.bfloat16
    with autocast("fp32", CPU):
        assert (a @ b).dtype == torch.float32


def test_cpu_bf16_detection_reads_flags(tmp_path):
    native = tmp_path / "native"
    native.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 avx2\n")
    amx = tmp_path / "amx"
    amx.write_text("flags\t\t: fpu avx512f amx_bf16 amx_tile amx_int8\n")
    emulated = tmp_path / "emulated"
    emulated.write_text("flags\t\t: fpu sse avx512f avx512bw avx2\n")
    arm = tmp_path / "arm"
    arm.write_text("Features\t: fp asimd bf16 i8mm\n")
    assert cpu_supports_bf16(native) and cpu_supports_bf16(amx) and cpu_supports_bf16(arm)
    assert not cpu_supports_bf16(emulated)
    assert not cpu_supports_bf16(tmp_path / "missing")


@pytest.mark.parametrize("flags, bf16, int8_dot", [
    ("fpu avx2 fma", False, False),  # AVX2 EPYC (Zen 3)
    ("avx2 avx512f avx512_vnni avx512_bf16", True, True),  # Zen 4
    ("avx2 avx_vnni", False, True),
    ("avx512f amx_tile amx_bf16 amx_int8", True, True),  # Sapphire Rapids
])
def test_cpu_flags_name_native_bf16_and_int8_dot_products(tmp_path, flags, bf16, int8_dot):
    from aaclip_med.precision import cpu_flags, cpu_has_int8_dot

    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n")
    assert cpu_flags(info) == frozenset(flags.split())
    assert cpu_supports_bf16(info) is bf16 and cpu_has_int8_dot(info) is int8_dot
    arm = tmp_path / "arm"
    arm.write_text("Features\t: fp asimd asimddp bf16\n")
    assert cpu_has_int8_dot(arm) and cpu_supports_bf16(arm)
    assert cpu_flags(tmp_path / "missing") == frozenset() and not cpu_has_int8_dot(tmp_path / "missing")
