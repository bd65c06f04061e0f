"""The attention a backbone can carry (the study file's ``model.attention``)."""

from __future__ import annotations

# none: the plain backbone; se: Squeeze-and-Excitation (Hu et al., 2018); cbam: CBAM (Woo et
# al., 2018), tuned by ``model.cbam``.
ATTENTIONS: tuple[str, ...] = ("none", "se", "cbam")
