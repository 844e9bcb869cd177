"""The method's stages on run folders: sampling, training (+ packing), the SFT
baseline, training curves, model cards, export."""
