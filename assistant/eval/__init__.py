"""Eval: a dataset folder (MultiHop-RAG format) run through retrieval and answering, with baselines
beside ours, and the metrics and tables `assistant eval` prints."""
