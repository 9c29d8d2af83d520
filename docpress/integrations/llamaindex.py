"""A LlamaIndex retriever over a docpress index (pip install 'docpress[llamaindex]').

>>> from docpress import Index                                          # doctest: +SKIP
>>> from docpress.integrations.llamaindex import DocpressLlamaRetriever  # doctest: +SKIP
>>> retriever = DocpressLlamaRetriever(Index.open("my-index"), k=4)     # doctest: +SKIP
>>> nodes = retriever.retrieve("net revenue in 2023")                   # doctest: +SKIP
"""

from __future__ import annotations

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from docpress.integrations.hits import hit_metadata


class DocpressLlamaRetriever(BaseRetriever):
    """Pages of a docpress index as LlamaIndex nodes: the page's whole text, its metadata
    (path, page, page_label, boxes, regions, text source, document metadata) and the score.
    Filters (a path glob, metadata) pass through."""

    def __init__(self, index, k: int = 4, method: str = "hybrid", path: str | None = None,
                 metadata: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self._index, self._k, self._method = index, k, method
        self._path, self._metadata = path, metadata

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self._index.search(query_bundle.query_str, k=self._k, method=self._method,
                                  path=self._path, metadata=self._metadata)
        nodes = []
        for hit in hits:
            node = TextNode(text=hit.text, id_=f"docpress-page-{hit.page_id}", metadata=hit_metadata(hit),
                            excluded_embed_metadata_keys=["boxes", "regions"],
                            excluded_llm_metadata_keys=["boxes", "regions", "score"])
            nodes.append(NodeWithScore(node=node, score=float(hit.score)))
        return nodes
