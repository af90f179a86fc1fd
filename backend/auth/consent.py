"""The consent volunteers accept before their first task: what the images are, how labels are
used, and that they may be shared. A change of wording that changes its meaning gets a new
``VERSION``; volunteers are then asked again (``User.consent_version`` records which one they
accepted, ``User.consent_at`` when)."""

VERSION = "2026-11-25"

TITLE = "Before you start"

POINTS = (
    "The images are brain MRI slices of people with multiple sclerosis, shared for research "
    "without names or faces. Do not try to find out who they are.",
    "You paint the lesions you see. Your labels are combined with other volunteers' labels, "
    "checked against experts' labels, and used to train and test computer models that find "
    "lesions.",
    "Your labels may be shared in research datasets that anyone can download, under your "
    "pseudonym or with no name at all; never under your email.",
    "Labelling is voluntary. You can stop at any time; labels you have already given stay in "
    "the data.",
    "This is not medical advice, and no result will be sent to you or to the people scanned.",
)
