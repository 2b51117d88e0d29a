"""Model definitions (pure torch): the Speech2Face voice encoder and the face decoder."""
