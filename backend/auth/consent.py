"""The consent volunteers accept before their first task: what the images are, how labels are
used, and that they may be shared. A change of wording that changes its meaning gets a new
``VERSION``; volunteers are then asked again (``User.consent_version`` records which one they
accepted, ``User.consent_at`` when)."""

VERSION = "2026-12-07"

TITLE = "Before you start"

POINTS = (
    "The images are brain MRI slices of people with multiple sclerosis, shared for research "
    "without names or faces. Do not try to find out who they are.",
    "Your labels are combined with other volunteers', checked against experts', and used to "
    "train and test computer models that find lesions.",
    "Your labels may be shared in research datasets anyone can download, under your pseudonym "
    "or no name; never with your email.",
    "Taking part is voluntary; you can stop at any time, and delete your account on your "
    "points page: your labels then leave every later combined label and dataset release "
    "(datasets already released keep them).",
    "This is not medical advice: no result goes to you or to the people scanned.",
)
