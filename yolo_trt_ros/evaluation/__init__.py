"""Offline evaluation: MOTChallenge tracking metrics and COCO mAP."""
