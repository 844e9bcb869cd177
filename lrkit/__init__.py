"""lrkit: LightReasoner, notebook-first."""
__version__ = "0.1.0"
