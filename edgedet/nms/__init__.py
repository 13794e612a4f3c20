"""Non-maximum suppression: the specification's reference oracle and the host path.

See docs/nms.md for the semantics every implementation follows.
"""

from edgedet.nms.params import BOX_CENTER_SIZE, BOX_CORNERS, NMSParams

__all__ = ["NMSParams", "BOX_CORNERS", "BOX_CENTER_SIZE"]
