"""Pure tensor maths: divergences and soft labels (divergence), step selection
(selection), the training losses (losses). No files, no models."""
