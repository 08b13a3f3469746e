"""``edml score``: history scored by a given version or as of each trip's pickup, on one
machine or on Spark, through the same loader and the same request -> tensor mapping as
the stream; and the backtest that gates a publication."""
