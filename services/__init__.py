"""The faust stream processor that scores trip requests (``edml serve``)."""
