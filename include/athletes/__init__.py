"""Olympic ``athlete_events``: a generator of the classic file and the mean-Age-per-Year engines."""
