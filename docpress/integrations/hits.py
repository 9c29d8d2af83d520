"""What a RAG framework keeps of a hit besides its text."""

from __future__ import annotations


def hit_metadata(hit) -> dict:
    """Where the text comes from: path, 0-based page and 1-based page_label, score, matched
    boxes and regions (PDF points), text source, ids and the document's own metadata."""
    return {"path": hit.path, "page": hit.page, "page_label": hit.page + 1, "score": float(hit.score),
            "title": hit.title, "text_source": hit.text_source, "boxes": hit.boxes,
            "regions": [r.as_dict() for r in hit.regions], "doc_id": hit.doc_id, "page_id": hit.page_id,
            "other_paths": hit.other_paths, **{f"meta_{k}": v for k, v in hit.metadata.items()}}
