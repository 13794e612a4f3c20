"""Non-maximum suppression: the specification's reference oracle and the host path.

See docs/nms.md for the semantics every implementation follows.
"""

from edgedet.nms.boxes import NMSOutput
from edgedet.nms.host import batched_nms, nms
from edgedet.nms.params import BOX_CENTER_SIZE, BOX_CORNERS, NMSParams
from edgedet.nms.reference import reference_nms

__all__ = ["NMSParams", "BOX_CORNERS", "BOX_CENTER_SIZE", "NMSOutput", "batched_nms", "nms", "reference_nms"]
