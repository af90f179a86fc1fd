"""Label fusion: turning several volunteers' masks into one soft and hard label."""
