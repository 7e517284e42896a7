"""Front ends: typed events, the view state, the live and plain views; rich stays here."""
