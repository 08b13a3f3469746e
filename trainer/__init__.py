"""Trains the wide & deep trip-duration model and exports it as a SavedModel (``edml train``)."""
