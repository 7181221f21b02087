"""Bare torch modules: tensors in, tensors out. Texts and labels are the inference layer's job."""

from .model import GLiClassModel, GLiClassOutput, GLiClassPreTrainedModel

__all__ = ["GLiClassModel", "GLiClassOutput", "GLiClassPreTrainedModel"]
