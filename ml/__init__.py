"""mscrowd ML worker: MONAI lesion segmentation, uncertainty and slice selection.

Only this package imports torch; the backend reaches it through Celery task names.
"""
