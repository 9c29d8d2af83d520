"""Retrievers for RAG frameworks (optional extras: docpress[langchain], docpress[llamaindex])."""
