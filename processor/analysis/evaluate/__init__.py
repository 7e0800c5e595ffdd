"""`nsm evaluate`: the four-part north-star test on history, per candidate, and a recommendation."""
