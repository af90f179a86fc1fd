"""Quality control: metrics, gold samples and rater reliability."""
