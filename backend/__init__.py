"""mscrowd web platform: FastAPI backend for crowd labelling of MS lesions."""

__version__ = "0.1.0"
