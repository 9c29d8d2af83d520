"""The optical encoder's query side: the text model that turns a query into token vectors.

Those token vectors then go through the optical model's own QueryProjection (model.py) into
the page vectors' space. The tower is one of: an Encoder handed in (a test's fake, or the text
lane), CLIP's text tower (transformers format), or the text lane's model (all-MiniLM-L6-v2 by
default), loaded on first use.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from docpress.encoders.base import Encoder
from docpress.encoders.optical import weights as W
from docpress.encoders.text import DEFAULT_MODEL as DEFAULT_TEXT_MODEL
from docpress.errors import DocpressError

TEXT_QUERY_DIM = 384  # all-MiniLM-L6-v2

# per query: token vectors (n, dim) float32, token strings, pooled (dim,)
QueryTokens = tuple[np.ndarray, list[str], np.ndarray]


class ClipTextTower:
    """CLIP's text tower (transformers format, local directory) as a query token encoder.

    encode(texts) -> list of (tokens (n, hidden) float32 L2-normalised, token strings,
    pooled (hidden,)); BOS/EOS and padding are dropped, the pooled vector is the EOS state.
    """

    def __init__(self, path: str, device: str = "cpu"):
        from transformers import AutoTokenizer, CLIPTextModel

        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = CLIPTextModel.from_pretrained(path, local_files_only=True).eval().to(device)
        self.device = device
        self.dim = int(self.model.config.hidden_size)

    def encode(self, texts: list[str]) -> list[QueryTokens]:
        enc = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        with torch.inference_mode():
            out = self.model(input_ids=enc["input_ids"].to(self.device),
                             attention_mask=enc["attention_mask"].to(self.device))
        hidden = F.normalize(out.last_hidden_state.float(), dim=-1).cpu()
        pooled = F.normalize(out.pooler_output.float(), dim=-1).cpu()
        results = []
        for row, mask in enumerate(enc["attention_mask"]):
            n = int(mask.sum())
            ids = enc["input_ids"][row, 1:n - 1].tolist()
            results.append((hidden[row, 1:n - 1].numpy(), self.tokenizer.convert_ids_to_tokens(ids),
                            pooled[row].numpy()))
        return results


class QueryTower:
    """Which text model encodes queries, loaded when first needed.

    encoder: an Encoder to use as is (its id and config hash go into the config).
    clip_text: CLIP's text tower (a directory or hub id); text_model: the text lane's model
      (None: all-MiniLM-L6-v2). Without them the saved record (`saved`, the "query" entry of a
      saved optical directory) names the tower.
    dim: the tower's output width (default: the saved one, else read off the tower).
    """

    def __init__(self, encoder: Encoder | None = None, clip_text: str | None = None,
                 text_model: str | None = None, dim: int | None = None, saved: dict | None = None,
                 device: str = "cpu", local_files_only: bool | None = None):
        saved = saved or {}
        self.clip_text = clip_text or (saved.get("model") if saved.get("tower") == "clip" else None)
        self._clip_text_path = (str(W.resolve(self.clip_text, "CLIP text tower", local_files_only))
                                if self.clip_text else None)
        saved_text = saved.get("model") if saved.get("tower") == "text" else None
        self.text_model = text_model or (saved_text if saved_text != DEFAULT_TEXT_MODEL else None)
        self.encoder = encoder  # the loaded tower (an Encoder or a ClipTextTower), or None yet
        self.external = encoder is not None
        self.device = device
        self.dim = int(dim or saved.get("dim") or self._guess_dim())

    def _guess_dim(self) -> int:
        if self.external:
            return int(self.encoder.dim)
        if self.clip_text:
            from transformers import AutoConfig

            cfg = AutoConfig.from_pretrained(self._clip_text_path, local_files_only=True)
            return int(getattr(cfg, "text_config", cfg).hidden_size)
        return TEXT_QUERY_DIM

    def config(self) -> dict:
        """What the optical config records of the tower: {"tower", "model", "dim"}."""
        if self.external:
            return {"tower": self.encoder.id, "model": self.encoder.config_hash(), "dim": self.dim}
        if self.clip_text:
            return {"tower": "clip", "model": str(self.clip_text), "dim": self.dim}
        return {"tower": "text", "model": self.text_model or DEFAULT_TEXT_MODEL, "dim": self.dim}

    def options(self) -> dict:
        """The constructor option that names a non-default tower ({} for the default)."""
        if self.clip_text:
            return {"clip_text": str(self.clip_text)}
        if self.text_model:
            return {"text_model": str(self.text_model)}
        return {}

    def share(self, tower: Encoder) -> None:
        """Use an already loaded text lane as the tower (saves loading it twice).

        Only the very model the config names is accepted, so the config and vectors do not change.
        """
        wanted = self.text_model or DEFAULT_TEXT_MODEL
        if self.clip_text or self.external or tower.id != "text" or \
                tower.config().get("model") != wanted or int(tower.dim) != self.dim:
            raise DocpressError(f"this optical encoder's query tower is {self.config()}; "
                                f"{tower.id!r} cannot stand in for it")
        self.encoder = tower

    def tokens(self, texts: list[str]) -> list[QueryTokens]:
        """Per text: token vectors (n, dim) float32, token strings, pooled (dim,)."""
        if self.clip_text:
            if not isinstance(self.encoder, ClipTextTower):
                self.encoder = ClipTextTower(self._clip_text_path, self.device)
            return self.encoder.encode(texts)
        if self.encoder is None:
            from docpress.encoders.text import TextTokenEncoder

            self.encoder = TextTokenEncoder(model=self.text_model)
        if int(self.encoder.dim) != self.dim:
            raise DocpressError(f"the query tower gives {self.encoder.dim}-d vectors, the optical "
                                f"model's query projection expects {self.dim}")
        return [(q.vectors, q.tokens, q.pooled) for q in self.encoder.encode_queries(texts)]
