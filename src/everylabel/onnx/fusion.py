"""Transformer fusions of an exported graph, with onnxruntime's optimizer, kept only if exact.

onnxruntime's transformer optimizer rewrites a BERT-family graph into its fused kernels:
`Attention` (the query/key/value projections, the scaled dot products, the mask and softmax in one
node), `SkipLayerNormalization` (residual add + layer norm), `BiasGelu` and
`EmbedLayerNormalization`. The patterns are those of eager attention, which is why the export
traces the backbones with `attn_implementation="eager"`. The rewrite is pattern-matched, so a
backbone it does not recognise comes back partly fused or not at all; either way the export's
parity check decides (`export.py`): the fused graph replaces the plain one only if its outputs
stay within the tolerance on the parity inputs. The attention mask stays a 2-D mask (no
right-padding assumption). Only the optimizer's graph rewrites run here (no onnxruntime session
optimizations are saved), so the saved graph is portable across CPUs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

# Standard ONNX ops that the optimizer's statistics also count; they are not fusions here.
_NOT_FUSIONS = frozenset({"LayerNormalization", "SimplifiedLayerNormalization"})
# The backbone types whose layer layout is the BERT one the optimizer's "bert" patterns describe.
FUSABLE_MODEL_TYPES = frozenset({"bert", "roberta", "xlm-roberta", "electra", "camembert"})


def fusable(backbone_config: Any) -> bool:
    return getattr(backbone_config, "model_type", None) in FUSABLE_MODEL_TYPES and all(
        hasattr(backbone_config, key) for key in ("num_attention_heads", "hidden_size")
    )


def fuse_graph(source: Path, target: Path, backbone_config: Any) -> dict[str, int]:
    """Write the fused form of the graph at `source` to `target`; returns the count of each fused
    node type (empty, and nothing written, when nothing fused)."""
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions("bert")
    options.use_raw_attention_mask(True)
    quiet = logging.getLogger("onnxruntime.transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the optimizer logs each pattern it tried and did not find
    try:
        fused = optimizer.optimize_model(
            str(source),
            model_type="bert",
            num_heads=int(backbone_config.num_attention_heads),
            hidden_size=int(backbone_config.hidden_size),
            optimization_options=options,
            opt_level=0,
        )
    finally:
        quiet.setLevel(level)
    statistics = fused.get_fused_operator_statistics().items()
    counts = {name: int(n) for name, n in statistics if n and name not in _NOT_FUSIONS}
    if counts:
        fused.save_model_to_file(str(target))
    return counts
