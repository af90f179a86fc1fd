"""Tutorials: lessons, practice exercises and the field guide, written as data in tutorials/."""
