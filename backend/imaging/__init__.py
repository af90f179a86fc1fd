"""Imaging: importing cases (NIfTI, DICOM, raw clinical scans) and serving their slices."""

# The ML worker's job that computes a staged case's brain mask and imports it (sent by name:
# the backend never imports ``ml``).
BRAIN_MASK = "ml.brain_mask"
