"""Answers out: retrieval (dense + keyword, fused, reranked), the answer engines, citations and their
checks, the prompts, and the one LangChain chain every surface asks through."""
