"""Weights for the optical lane: find them, read them, map their key names onto ours, load them
into the model, save ours.

Layouts understood (keys may carry a leading `model.`):
- docpress:      a directory written by `save_model_dir` (config.json + model.safetensors);
- deepseek_ocr:  the DeepSeek-OCR checkpoint: `sam_model.*` (SAM, `net_2`/`net_3` = compressor),
                 `vision_model.*` (CLIP with fused `qkv_proj`), `projector.layers.*`,
                 `image_newline`, `view_seperator`; the language model's keys are never read;
- sam_original:  segment-anything's `image_encoder.*` (.pth), the same names as DeepSeek's SAM;
- sam_hf:        transformers' SamModel / SamVisionModel, `vision_encoder.*`;
- clip_hf:       transformers' CLIPModel / CLIPVisionModel, `vision_model.*` (transformers 5
                 saves a CLIPVisionModel without the prefix: clip_hf_bare).
Sources are a local file or directory, or a Hugging Face hub id resolved from the local cache
(and downloaded only when not offline and the hub answers within seconds).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from docpress.errors import BackendUnavailableError, DocpressError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "docpress-optical"
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_DEEPSEEK_PARTS = ("sam_model.", "vision_model.", "projector.", "image_newline", "view_seperator")

SAM, COMPRESSOR, CLIP, HEAD = "encoder.sam.", "encoder.compressor.", "encoder.clip.", "head."


# -- finding ---------------------------------------------------------------------------------
def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub's host accepts a TCP connection within `timeout` seconds (DNS included)."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host, _, port = re.sub(r"^https?://", "", endpoint).split("/")[0].partition(":")
    port = int(port) if port.isdigit() else (80 if endpoint.startswith("http://") else 443)
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(result and result[0])


def resolve(source: str | os.PathLike, what: str, local_files_only: bool | None = None) -> Path:
    """A local path for `source` (path or hub id), or a one-line BackendUnavailableError.

    A hub id is looked up in the local Hugging Face cache first; it is downloaded only when
    neither `local_files_only` nor HF_HUB_OFFLINE says otherwise and the hub is reachable.
    """
    text = str(source)
    path = Path(text).expanduser()
    if path.exists():
        return path
    hint = f"pass a local directory or file with the {what} weights (e.g. --weights DIR)"
    if not _HUB_ID.match(text):
        raise BackendUnavailableError(f"{what} weights not found: no such file or directory {text!r}; {hint}")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise BackendUnavailableError(
            f"{what} weights: {text!r} is not a local path and huggingface_hub is not installed; {hint}") from None
    try:
        return Path(snapshot_download(text, local_files_only=True, allow_patterns=HUB_PATTERNS))
    except Exception:  # noqa: BLE001 - not cached: fall through to the download decision
        pass
    offline = _offline() if local_files_only is None else local_files_only
    if offline:
        raise BackendUnavailableError(
            f"{what} weights: {text!r} is not a local path and not in the Hugging Face cache "
            f"(offline mode); {hint}")
    if not _hub_reachable():
        raise BackendUnavailableError(
            f"{what} weights: {text!r} is not a local path and the Hugging Face hub is unreachable; {hint}")
    try:
        return Path(snapshot_download(text, allow_patterns=HUB_PATTERNS, etag_timeout=10))
    except Exception as exc:  # noqa: BLE001 - any hub failure is one line for the user
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise BackendUnavailableError(f"{what} weights: could not download {text!r} ({first}); {hint}") from None


def checkpoint_files(path: Path) -> list[Path]:
    """The weight files of a checkpoint file or directory (safetensors preferred)."""
    if path.is_file():
        return [path]
    for pattern in ("*.safetensors", "*.bin", "*.pth", "*.pt"):
        files = sorted(p for p in path.glob(pattern) if p.is_file())
        if files:
            return files
    raise BackendUnavailableError(
        f"no weight files (*.safetensors, *.bin, *.pth) in {path}; pass the directory that holds them")


# -- reading ---------------------------------------------------------------------------------
def _strip_model(key: str) -> str:
    return key[6:] if key.startswith("model.") else key


def _torch_load(file: Path) -> dict:
    try:
        data = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - old zip-less pickles cannot be memory-mapped
        data = torch.load(file, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):  # training checkpoints nest the weights
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    return data


def read_tensors(files: list[Path], keep: Callable[[str], bool]) -> dict[str, torch.Tensor]:
    """The tensors whose (file) key passes `keep`; safetensors files are read lazily."""
    from safetensors import safe_open

    out: dict[str, torch.Tensor] = {}
    for file in files:
        if file.suffix == ".safetensors":
            with safe_open(str(file), framework="pt") as fh:
                for key in fh.keys():
                    if keep(key):
                        out[key] = fh.get_tensor(key)
        else:
            out.update({k: v for k, v in _torch_load(file).items() if keep(k) and torch.is_tensor(v)})
    return out


def list_keys(files: list[Path]) -> list[str]:
    from safetensors import safe_open

    keys: list[str] = []
    for file in files:
        if file.suffix == ".safetensors":
            with safe_open(str(file), framework="pt") as fh:
                keys.extend(fh.keys())
        else:
            keys.extend(_torch_load(file).keys())
    return keys


def detect_layout(keys: list[str]) -> str:
    """Which layout a checkpoint's keys are in (see the module docstring)."""
    stripped = [_strip_model(k) for k in keys]
    if any(k.startswith(("encoder.sam.", "encoder.clip.")) for k in keys):
        return "docpress"
    if any(k.startswith("sam_model.") or k.startswith("vision_model.transformer.") for k in stripped):
        return "deepseek_ocr"
    if any(k.startswith("image_encoder.") for k in keys):
        return "sam_original"
    if any(k.startswith("vision_encoder.layers.") for k in keys):
        return "sam_hf"
    if any(k.startswith("vision_model.encoder.layers.") for k in keys):
        return "clip_hf"
    if "embeddings.class_embedding" in keys and any(k.startswith("encoder.layers.") for k in keys):
        return "clip_hf_bare"  # transformers 5 saves CLIPVisionModel without `vision_model.`
    if any(k.startswith("blocks.") for k in keys) and any(k.startswith("neck.") for k in keys):
        return "sam_original_bare"
    sample = ", ".join(keys[:3]) or "no keys"
    raise DocpressError(f"unrecognised checkpoint layout (first keys: {sample}); expected DeepSeek-OCR, "
                        "SAM (transformers or segment-anything) or CLIP (transformers) weights")


# -- key mapping -----------------------------------------------------------------------------
_SAM_ORIGINAL = [
    (re.compile(r"^patch_embed\.proj\."), "patch_embed.projection."),
    (re.compile(r"^blocks\.(\d+)\.norm1\."), r"layers.\1.layer_norm1."),
    (re.compile(r"^blocks\.(\d+)\.norm2\."), r"layers.\1.layer_norm2."),
    (re.compile(r"^blocks\.(\d+)\.(attn|mlp)\."), r"layers.\1.\2."),
    (re.compile(r"^neck\.0\."), "neck.conv1."),
    (re.compile(r"^neck\.1\."), "neck.layer_norm1."),
    (re.compile(r"^neck\.2\."), "neck.conv2."),
    (re.compile(r"^neck\.3\."), "neck.layer_norm2."),
]


def _map_sam_original(key: str) -> str | None:
    """A segment-anything / DeepSeek SAM key (prefix removed) -> our key, None if not SAM's."""
    if key.startswith("net_2."):
        return COMPRESSOR + "conv1." + key[6:]
    if key.startswith("net_3."):
        return COMPRESSOR + "conv2." + key[6:]
    if key == "pos_embed":
        return SAM + key
    for pattern, repl in _SAM_ORIGINAL:
        if pattern.match(key):
            return SAM + pattern.sub(repl, key)
    return None


_CLIP_IGNORED = ("embeddings.patch_embedding.", "embeddings.position_ids", "post_layernorm.")


def _map_clip(key: str) -> str | None:
    """A CLIP vision key (prefix removed; transformers or DeepSeek names) -> our key."""
    if key.startswith(_CLIP_IGNORED):
        return None
    key = re.sub(r"^transformer\.layers\.", "encoder.layers.", key)
    if key.startswith(("embeddings.", "pre_layrnorm.", "encoder.layers.")):
        return CLIP + key
    return None


@dataclass
class Mapped:
    """A checkpoint in our key names: tensors, plus the source keys that were not used."""

    layout: str
    tensors: dict[str, torch.Tensor]
    ignored: list[str] = field(default_factory=list)


def map_state_dict(state: dict[str, torch.Tensor], layout: str) -> Mapped:
    """Rename (and split fused qkv) a checkpoint's tensors into this package's names."""
    out: dict[str, torch.Tensor] = {}
    ignored: list[str] = []

    def put(src: str, dst: str | None, tensor: torch.Tensor) -> None:
        if dst is None:
            ignored.append(src)
            return
        fused = re.match(r"^(.*\.self_attn\.)qkv_proj\.(weight|bias)$", dst)
        if fused:  # DeepSeek's CLIP: one (3C, C) projection, q then k then v
            for name, part in zip(("q_proj", "k_proj", "v_proj"), tensor.chunk(3, dim=0)):
                out[f"{fused.group(1)}{name}.{fused.group(2)}"] = part.contiguous()
        else:
            out[dst] = tensor

    for src, tensor in state.items():
        key = _strip_model(src)
        if layout == "docpress":
            put(src, src, tensor)
        elif layout == "deepseek_ocr":
            if key.startswith("sam_model."):
                put(src, _map_sam_original(key[len("sam_model."):]), tensor)
            elif key.startswith("vision_model."):
                put(src, _map_clip(key[len("vision_model."):]), tensor)
            elif key.startswith("projector.layers."):
                put(src, HEAD + "projector." + key[len("projector.layers."):], tensor)
            elif key == "image_newline":
                put(src, HEAD + "image_newline", tensor)
            elif key == "view_seperator":
                put(src, HEAD + "view_separator", tensor)
            else:
                ignored.append(src)
        elif layout in ("sam_original", "sam_original_bare"):
            # segment-anything's image_encoder.*; a bare DeepSeek SAM export may hold net_2/net_3
            prefix = "image_encoder." if layout == "sam_original" else ""
            dst = _map_sam_original(src[len(prefix):]) if src.startswith(prefix) else None
            put(src, dst if dst and (dst.startswith(SAM) or not prefix) else None, tensor)
        elif layout == "sam_hf":
            inner = src[len("vision_encoder."):] if src.startswith("vision_encoder.") else None
            put(src, SAM + inner if inner and not inner.startswith("proj.") else None, tensor)
        elif layout == "clip_hf":
            inner = src[len("vision_model."):] if src.startswith("vision_model.") else None
            put(src, _map_clip(inner) if inner else None, tensor)
        elif layout == "clip_hf_bare":
            put(src, _map_clip(src), tensor)
        else:
            raise ValueError(f"unknown layout {layout!r}")
    return Mapped(layout, out, ignored)


def _wanted(layout: str) -> Callable[[str], bool]:
    if layout == "deepseek_ocr":  # never touch the 3B language model
        return lambda k: _strip_model(k).startswith(_DEEPSEEK_PARTS)
    prefixes = {"sam_original": ("image_encoder.",), "sam_hf": ("vision_encoder.",),
                "clip_hf": ("vision_model.",)}.get(layout)
    return (lambda k: k.startswith(prefixes)) if prefixes else (lambda k: True)


def load_checkpoint(source: str | os.PathLike, what: str = "optical",
                    local_files_only: bool | None = None) -> tuple[Path, Mapped]:
    """Resolve, read and map a checkpoint: (resolved path, tensors in our names)."""
    path = resolve(source, what, local_files_only)
    files = checkpoint_files(path)
    layout = detect_layout(list_keys(files))
    return path, map_state_dict(read_tensors(files, _wanted(layout)), layout)


# -- into a model ----------------------------------------------------------------------------
PARTS = {"sam": SAM, "compressor": COMPRESSOR, "clip": CLIP, "head": HEAD + "proj.",
         "projector": HEAD + "projector.", "query": "query."}


def check_shapes(model: torch.nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    """A one-line error when a tensor does not fit the model's parameter of the same name."""
    own = model.state_dict()
    for key, tensor in tensors.items():
        if key in own and tuple(own[key].shape) != tuple(tensor.shape):
            raise DocpressError(f"{where}: {key} has shape {tuple(tensor.shape)}, the model expects "
                                f"{tuple(own[key].shape)}; pass a model_config that fits these weights")


def load_saved(model: torch.nn.Module, path: Path) -> None:
    """Load a docpress optical directory's weights into the model its config describes."""
    from safetensors.torch import load_file

    state = load_file(str(path / WEIGHTS_NAME))
    check_shapes(model, state, str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise DocpressError(f"{path}: weights do not match the saved config "
                            f"(missing {missing[:3]}, unexpected {unexpected[:3]})")


def load_mapped(model: torch.nn.Module, checkpoint: Mapped) -> list[str]:
    """Load a mapped checkpoint over the parameters it covers; returns the keys it loaded."""
    check_shapes(model, checkpoint.tensors, checkpoint.layout)
    own = model.state_dict()
    unknown = [k for k in checkpoint.tensors if k not in own]
    if unknown:
        raise DocpressError(f"{checkpoint.layout} weights: no place for {unknown[:3]}")
    model.load_state_dict(checkpoint.tensors, strict=False)
    return list(checkpoint.tensors)


def coverage(model: torch.nn.Module, loaded: dict[str, str], saved: bool) -> dict[str, str]:
    """Where each part's weights came from: {part: 'saved' | layout names | 'random'}.

    loaded: {key: layout} of the keys loaded from checkpoints; saved: the rest came from a
    docpress directory (else they are the random init).
    """
    out = {}
    for name, prefix in PARTS.items():
        keys = [k for k in model.state_dict() if k.startswith(prefix)]
        if keys:
            sources = {loaded.get(k, "saved" if saved else "random") for k in keys}
            out[name] = "/".join(sorted(sources))
    return out


# -- config inference ------------------------------------------------------------------------
def infer_dims(tensors: dict[str, torch.Tensor], head_dim: int = 64) -> dict:
    """Model dims read off the tensors' shapes (heads assume 64-d heads, as SAM-B and CLIP-L).

    Returns the DeepEncoderConfig fields it could infer; absent parts are left out.
    """
    dims: dict = {}
    t = tensors.get
    if (w := t(SAM + "patch_embed.projection.weight")) is not None:
        dims.update(sam_hidden=w.shape[0], patch_size=w.shape[-1], sam_heads=max(1, w.shape[0] // head_dim))
        layers = {int(m.group(1)) for k in tensors if (m := re.match(re.escape(SAM) + r"layers\.(\d+)\.", k))}
        dims["sam_layers"] = len(layers)
        if (pos := t(SAM + "pos_embed")) is not None:
            dims["sam_image_size"] = pos.shape[1] * w.shape[-1]
            grid = pos.shape[1]
            rel = {i: t(f"{SAM}layers.{i}.attn.rel_pos_h") for i in sorted(layers)}
            if all(r is not None for r in rel.values()):
                dims["sam_global"] = [i for i, r in rel.items() if r.shape[0] == 2 * grid - 1]
                windows = {(r.shape[0] + 1) // 2 for i, r in rel.items() if i not in dims["sam_global"]}
                if len(windows) == 1:
                    dims["sam_window"] = windows.pop()
        if (lin1 := t(SAM + "layers.0.mlp.lin1.weight")) is not None:
            dims["sam_mlp_ratio"] = lin1.shape[0] / w.shape[0]
    if (w := t(SAM + "neck.conv1.weight")) is not None:
        dims["sam_out"] = w.shape[0]
    if (w1 := t(COMPRESSOR + "conv1.weight")) is not None and (w2 := t(COMPRESSOR + "conv2.weight")) is not None:
        dims["compress_channels"] = [w1.shape[0], w2.shape[0]]
    if (cls := t(CLIP + "embeddings.class_embedding")) is not None:
        dims.update(clip_hidden=cls.shape[0], clip_heads=max(1, cls.shape[0] // head_dim))
        layers = {int(m.group(1)) for k in tensors
                  if (m := re.match(re.escape(CLIP) + r"encoder\.layers\.(\d+)\.", k))}
        dims["clip_layers"] = len(layers)
        if (fc1 := t(CLIP + "encoder.layers.0.mlp.fc1.weight")) is not None:
            dims["clip_mlp"] = fc1.shape[0]
        if (pos := t(CLIP + "embeddings.position_embedding.weight")) is not None:
            dims["clip_grid"] = int(round((pos.shape[0] - 1) ** 0.5))
    if (w := t(HEAD + "projector.weight")) is not None:
        dims["projector_dim"] = w.shape[0]
    return dims


# -- our own directory -----------------------------------------------------------------------
def state_hash(state: dict[str, torch.Tensor]) -> str:
    """sha256 over names, shapes, dtypes and bytes of a state dict, first 16 hex digits."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{key}|{tuple(state[key].shape)}|{tensor.dtype}|".encode())
        digest.update(tensor.view(torch.uint8).numpy())
    return digest.hexdigest()[:16]


def save_model_dir(directory: str | os.PathLike, config: dict, state: dict[str, torch.Tensor]) -> Path:
    """Write config.json + model.safetensors (each via a temporary file and a rename)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (WEIGHTS_NAME + ".tmp")
    save_file({k: v.detach().to("cpu").contiguous() for k, v in state.items()}, str(tmp),
              metadata={"format": "pt", "docpress": FORMAT})
    os.replace(tmp, directory / WEIGHTS_NAME)
    tmp = directory / (CONFIG_NAME + ".tmp")
    tmp.write_text(json.dumps({"format": FORMAT, **config}, indent=2, sort_keys=True))
    os.replace(tmp, directory / CONFIG_NAME)
    return directory


def read_model_config(path: Path) -> dict | None:
    """config.json of a docpress optical directory, None for any other path."""
    file = path / CONFIG_NAME if path.is_dir() else None
    if not file or not file.is_file():
        return None
    try:
        config = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return config if isinstance(config, dict) and config.get("format") == FORMAT else None
