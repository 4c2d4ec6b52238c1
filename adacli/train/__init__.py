"""The training stage: datasets, timm models, one training step, the clock and the trial loop."""
