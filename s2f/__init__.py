"""speech2face: learn what a person's face looks like from their voice (Speech2Face, Oh et al. CVPR 2019)."""

__version__ = "0.1.0"
