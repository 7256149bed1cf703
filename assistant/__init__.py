"""Newsroom question-answering assistant: cited answers from collected articles."""

__version__ = "0.1.0"
