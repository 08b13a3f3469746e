"""A small sample of real TLC trips, installed as edml.sample_trips (see README.md here)."""
