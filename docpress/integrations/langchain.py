"""A LangChain retriever over a docpress index (pip install 'docpress[langchain]').

>>> from docpress import Index                                  # doctest: +SKIP
>>> from docpress.integrations.langchain import DocpressRetriever  # doctest: +SKIP
>>> retriever = DocpressRetriever(index=Index.open("my-index"), k=4)  # doctest: +SKIP
>>> docs = retriever.invoke("net revenue in 2023")              # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Optional

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from docpress.integrations.hits import hit_metadata


class DocpressRetriever(BaseRetriever):
    """Pages of a docpress index as LangChain Documents: the page's whole text as content,
    where it comes from (path, page, page_label, score, boxes, regions, text source, the
    document's metadata) as metadata. Filters (a path glob, metadata) pass through."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: Any
    k: int = 4
    method: str = "hybrid"
    path: Optional[str] = None
    metadata: Optional[dict] = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = self.index.search(query, k=self.k, method=self.method, path=self.path, metadata=self.metadata)
        return [Document(page_content=hit.text, metadata=hit_metadata(hit)) for hit in hits]
