"""``edml retrain``: turns the controller's retrain requests into shadow candidates."""
