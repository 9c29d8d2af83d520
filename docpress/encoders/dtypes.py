"""Which torch dtype an encoder runs in: one rule for every encoder."""

from __future__ import annotations

from pathlib import Path


def pick_dtype(dtype, device: str):
    """A torch dtype as given, a name ("float32", "bfloat16", "float16"), or "auto": bf16 on
    GPUs and on CPUs with AVX512-BF16/AMX (about 4x faster matmuls there), else float32.

    >>> import torch
    >>> pick_dtype("bfloat16", "cpu"), pick_dtype(torch.float16, "cpu"), pick_dtype("auto", "cuda")
    (torch.bfloat16, torch.float16, torch.bfloat16)
    """
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype in names:
        return names[dtype]
    if dtype != "auto":
        from docpress.errors import DocpressError

        raise DocpressError(f"unknown dtype {dtype!r}; choose auto, {', '.join(names)}")
    if device == "cuda":
        return torch.bfloat16
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return torch.float32
    return torch.bfloat16 if ("avx512_bf16" in flags or "amx_bf16" in flags) else torch.float32
