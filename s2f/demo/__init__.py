"""The embedded offline demo corpus: speakers whose voice and face share latent traits (see docs/demo_corpus.md)."""
