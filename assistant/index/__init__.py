"""The index: the embedder, the vector store (Chroma, the one store of truth) and the keyword index
derived from it. Everything that reads or writes the archive's chunks goes through here."""
