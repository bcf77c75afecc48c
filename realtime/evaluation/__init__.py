"""Scoring annotation runs of videos against per-frame ground truth (``m2snet-rt evaluate``):
``truth`` reads the COCO ground truth, ``clinical`` computes what a detection aid is judged
on (with TRUE-Colon), ``report`` puts it together."""
