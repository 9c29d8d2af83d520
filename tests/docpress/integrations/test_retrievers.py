"""The LangChain and LlamaIndex retrievers return the expected page first, text and metadata."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import QUESTIONS, TOPICS


def test_langchain_retriever(topic_index):
    pytest.importorskip("langchain_core")
    from docpress.integrations.langchain import DocpressRetriever

    docs = DocpressRetriever(index=topic_index, k=3).invoke(QUESTIONS["espresso"])
    assert len(docs) == 3 and docs[0].page_content == topic_index.catalog.page(
        docs[0].metadata["page_id"]).text
    assert Path(docs[0].metadata["path"]).stem == "espresso" and docs[0].metadata["page_label"] == 1
    assert TOPICS["espresso"][:30] in docs[0].page_content
    assert docs[0].metadata["meta_corpus"] == "topics" and docs[0].metadata["boxes"]
    filtered = DocpressRetriever(index=topic_index, k=3, path="*volcano*").invoke(QUESTIONS["espresso"])
    assert {Path(d.metadata["path"]).stem for d in filtered} == {"volcanoes"}


def test_llamaindex_retriever(topic_index):
    pytest.importorskip("llama_index.core")
    from docpress.integrations.llamaindex import DocpressLlamaRetriever

    nodes = DocpressLlamaRetriever(topic_index, k=2).retrieve(QUESTIONS["taxes"])
    assert len(nodes) == 2 and Path(nodes[0].node.metadata["path"]).stem == "taxes"
    assert nodes[0].score >= nodes[1].score and TOPICS["taxes"][:30] in nodes[0].node.get_content()
    filtered = DocpressLlamaRetriever(topic_index, k=2, metadata={"corpus": "other"}).retrieve(QUESTIONS["taxes"])
    assert filtered == []
