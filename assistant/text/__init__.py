"""Text rules, shared by every stage: the one sentence splitter, page-furniture cleaning, time hints in
questions, the copy (near-duplicate) test, article text addressed to the reader, and the word rules
(tokenizer, stemmer, how much a word says). No store, no model: pure functions of text."""
