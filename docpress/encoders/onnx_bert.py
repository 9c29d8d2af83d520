"""The text model on ONNX Runtime: the same BERT exported once to ONNX, fp32 or int8.

Why it is here and not the default: measured on this project's 2-core AVX512-BF16 machine
(benchmarks/encoder_runtimes.py, results in benchmarks/results/encoder_runtimes.md), torch in
bf16 is the fastest runtime and the int8 model the least faithful, so `auto` stays torch. On
CPUs without bf16 matmuls torch runs fp32, and there ONNX int8 is the faster choice; fp32 ONNX
gives the same vectors as torch fp32 (for machines where onnxruntime is what is deployed).

The exported graph is cached on disk, keyed by the model files and the library versions, and
written atomically, so concurrent processes never read half a file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from types import SimpleNamespace

from docpress.errors import BackendUnavailableError

RUNTIMES = ("onnx", "onnx-int8")


def cache_dir() -> Path:
    """Where exported models live: $DOCPRESS_CACHE/onnx, else ~/.cache/docpress/onnx."""
    root = os.environ.get("DOCPRESS_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or
                                                    Path.home() / ".cache") / "docpress"
    return Path(root) / "onnx"


def _fingerprint(model_dir: Path, runtime: str) -> str:
    import onnxruntime
    import torch

    digest = hashlib.sha256(f"{runtime}|{torch.__version__}|{onnxruntime.__version__}".encode())
    for name in ("config.json", "model.safetensors"):
        stat = (model_dir / name).stat()
        digest.update(f"{name}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


class OnnxBert:
    """Called like the torch module: (input_ids, attention_mask) -> .last_hidden_state."""

    def __init__(self, model_dir: str | Path, torch_module, runtime: str, threads: int | None = None):
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown ONNX runtime {runtime!r}")
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendUnavailableError("runtime onnx needs onnxruntime: pip install onnxruntime") from None
        self.config = torch_module.config
        path = self._exported(Path(model_dir), torch_module, runtime)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or _torch_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # its warnings about unused initialisers are noise here
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        # ORT's memory arena keeps every batch's buffers: an int8 ingest of MMLongBench-dev
        # peaked at 3.3 GB with it (2.6 GB without an arena, but 1.5x slower a batch).
        # Shrinking it after each run keeps the speed and gives the memory back.
        self._run_options = ort.RunOptions()
        self._run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def __call__(self, input_ids, attention_mask):
        import torch

        hidden = self.session.run(None, {"input_ids": input_ids.cpu().numpy(),
                                         "attention_mask": attention_mask.cpu().numpy()},
                                  self._run_options)[0]
        return SimpleNamespace(last_hidden_state=torch.from_numpy(hidden))

    # torch-module manners, so the encoder treats both runtimes alike
    def eval(self) -> "OnnxBert":
        return self

    def to(self, *_args, **_kwargs) -> "OnnxBert":
        return self

    @staticmethod
    def _exported(model_dir: Path, module, runtime: str) -> Path:
        target = cache_dir() / f"{model_dir.name}-{_fingerprint(model_dir, runtime)}.onnx"
        if target.is_file():
            return target
        try:
            import onnx  # noqa: F401  (the exporter and the quantizer both need it)
        except ImportError:
            raise BackendUnavailableError(
                f"runtime {runtime} exports the model once and needs the onnx package: "
                "pip install 'docpress[onnx]'") from None
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as work:
            fp32 = Path(work) / "model.onnx"
            _export(module, fp32)
            result = fp32
            if runtime == "onnx-int8":
                result = Path(work) / "model-int8.onnx"
                _quantize(fp32, result)
            os.replace(result, target)  # atomic: another process sees the whole file or none
        return target


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _export(module, path: Path) -> None:
    import warnings

    import torch

    ids = torch.ones((2, 16), dtype=torch.long)
    mask = torch.ones((2, 16), dtype=torch.long)

    class Hidden(torch.nn.Module):  # the exporter wants tensors out, not a namespace
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids, attention_mask).last_hidden_state

    axes = {0: "batch", 1: "tokens"}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(Hidden(module.float().eval()), (ids, mask), str(path),
                          input_names=["input_ids", "attention_mask"], output_names=["hidden"],
                          dynamic_axes={"input_ids": axes, "attention_mask": axes, "hidden": axes},
                          opset_version=17, dynamo=False)


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8: weights per output channel, activations quantised per batch at run time.
    Only the matrix products: quantising the embeddings or layer norms cost far more accuracy
    than time in the study (benchmarks/results/encoder_runtimes.md)."""
    import logging

    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer's advice to pre-process is noise to a user
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"],
                         extra_options={"DefaultTensorType": TensorProto.FLOAT})
    finally:
        root.setLevel(level)
