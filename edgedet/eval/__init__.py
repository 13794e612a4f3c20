"""Accuracy: COCO-style mAP on labelled sets and detection-aware comparison of two models."""
