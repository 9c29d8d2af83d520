"""A local BERT-family text model loaded straight from its files, without transformers.

Why: on a cold `docpress search` importing transformers and its BertModel class costs about
2.8 s of a 5.2 s start (measured: torch 1.3 s, transformers 1.0 s, modeling_bert 1.8 s on the
machine here), while the forward pass of a 6-layer MiniLM is a few lines of torch. The
tokenizer is the same tokenizer.json through the `tokenizers` library that transformers' fast
tokenizer wraps; the weights are the same model.safetensors. Anything else (another
architecture, a hub id, a non-standard config) goes through transformers as before.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

# What this module implements of a BERT config; anything else falls back to transformers.
SUPPORTED = {"model_type": "bert", "hidden_act": "gelu", "position_embedding_type": "absolute"}


def load_local_bert(model_dir: str) -> tuple["FastTokenizer", object] | None:
    """(tokenizer, model) for a folder with a plain BERT config, tokenizer.json and
    model.safetensors; None when the folder is anything else."""
    folder = Path(model_dir)
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if any(config.get(k, v) != v for k, v in SUPPORTED.items()) or config.get("model_type") != "bert":
        return None
    if not (folder / "tokenizer.json").is_file() or not (folder / "model.safetensors").is_file():
        return None
    try:
        return FastTokenizer(folder), Bert.from_folder(folder, config)
    except (ValueError, KeyError, OSError):  # not the plain BERT this reads: transformers will
        return None


class FastTokenizer:
    """The parts of a transformers fast tokenizer the text encoder uses, over `tokenizers`."""

    is_fast = True

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tok.no_truncation()
        self._tok.no_padding()
        names = _special_names(folder)
        self.cls_token_id = self._tok.token_to_id(names.get("cls_token", "[CLS]"))
        self.sep_token_id = self._tok.token_to_id(names.get("sep_token", "[SEP]"))
        self.pad_token_id = self._tok.token_to_id(names.get("pad_token", "[PAD]"))
        added = json.loads((folder / "tokenizer.json").read_text()).get("added_tokens", [])
        self.all_special_ids = sorted({t["id"] for t in added if t.get("special")} |
                                      {i for i in (self.cls_token_id, self.sep_token_id, self.pad_token_id)
                                       if i is not None})

    def __call__(self, texts: list[str], **_options) -> dict:
        encodings = self._tok.encode_batch(list(texts), add_special_tokens=False)
        return {"input_ids": [e.ids for e in encodings], "offset_mapping": [e.offsets for e in encodings]}

    def convert_ids_to_tokens(self, ids) -> list[str]:
        return [self._tok.id_to_token(int(i)) for i in ids]


def _special_names(folder: Path) -> dict[str, str]:
    """cls/sep/pad token strings from special_tokens_map.json or tokenizer_config.json."""
    names: dict[str, str] = {}
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        try:
            data = json.loads((folder / name).read_text())
        except (OSError, ValueError):
            continue
        for key in ("cls_token", "sep_token", "pad_token"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                names[key] = value
    return names


def _module():
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Layer(nn.Module):
        def __init__(self, hidden: int, heads: int, inner: int, eps: float):
            super().__init__()
            self.heads = heads
            self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))
            self.attn_out, self.attn_norm = nn.Linear(hidden, hidden), nn.LayerNorm(hidden, eps=eps)
            self.inner, self.out = nn.Linear(hidden, inner), nn.Linear(inner, hidden)
            self.out_norm = nn.LayerNorm(hidden, eps=eps)

        def forward(self, x, mask):
            b, n, h = x.shape
            split = lambda t: t.view(b, n, self.heads, h // self.heads).transpose(1, 2)  # noqa: E731
            attended = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)),
                                                      split(self.value(x)), attn_mask=mask)
            x = self.attn_norm(x + self.attn_out(attended.transpose(1, 2).reshape(b, n, h)))
            return self.out_norm(x + self.out(F.gelu(self.inner(x))))

    class BertModule(nn.Module):
        """BERT's encoder (no pooler): embeddings, then post-norm transformer layers."""

        def __init__(self, config: dict):
            super().__init__()
            hidden, eps = config["hidden_size"], config.get("layer_norm_eps", 1e-12)
            self.config = SimpleNamespace(hidden_size=hidden)
            self.words = nn.Embedding(config["vocab_size"], hidden)
            self.positions = nn.Embedding(config["max_position_embeddings"], hidden)
            self.types = nn.Embedding(config.get("type_vocab_size", 2), hidden)
            self.norm = nn.LayerNorm(hidden, eps=eps)
            self.layers = nn.ModuleList(Layer(hidden, config["num_attention_heads"], config["intermediate_size"], eps)
                                        for _ in range(config["num_hidden_layers"]))

        def forward(self, input_ids, attention_mask):
            n = input_ids.shape[1]
            positions = torch.arange(n, device=input_ids.device)
            x = self.words(input_ids) + self.positions(positions)[None] + self.types.weight[0]
            x = self.norm(x)
            mask = attention_mask.bool()[:, None, None, :]  # keys that are real tokens
            for layer in self.layers:
                x = layer(x, mask)
            return SimpleNamespace(last_hidden_state=x)

    return BertModule


# checkpoint name -> this module's name, per layer and for the embeddings
LAYER_NAMES = {"attention.self.query": "query", "attention.self.key": "key", "attention.self.value": "value",
               "attention.output.dense": "attn_out", "attention.output.LayerNorm": "attn_norm",
               "intermediate.dense": "inner", "output.dense": "out", "output.LayerNorm": "out_norm"}
EMBEDDING_NAMES = {"embeddings.word_embeddings": "words", "embeddings.position_embeddings": "positions",
                   "embeddings.token_type_embeddings": "types", "embeddings.LayerNorm": "norm"}


class Bert:
    """Builds the torch module from a config and a safetensors file."""

    @staticmethod
    def from_folder(folder: Path, config: dict):
        from safetensors.torch import load_file

        module = _module()(config)
        weights = {}
        for name, tensor in load_file(str(folder / "model.safetensors")).items():
            name = name.removeprefix("bert.")
            if name.startswith("encoder.layer."):
                _, _, index, rest = name.split(".", 3)
                part, _, kind = rest.rpartition(".")
                if part in LAYER_NAMES:
                    weights[f"layers.{index}.{LAYER_NAMES[part]}.{kind}"] = tensor
            else:
                part, _, kind = name.rpartition(".")
                if part in EMBEDDING_NAMES:
                    weights[f"{EMBEDDING_NAMES[part]}.{kind}"] = tensor
        # the LayerNorm of old checkpoints is gamma/beta
        weights = {k.replace(".gamma", ".weight").replace(".beta", ".bias"): v for k, v in weights.items()}
        missing, unexpected = module.load_state_dict(weights, strict=False)
        if missing or unexpected:
            raise ValueError(f"{folder}: weights do not fit a BERT encoder (missing {missing[:3]})")
        return module
