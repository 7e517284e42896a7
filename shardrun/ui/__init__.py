"""Front ends: the view state, the live and plain views; rich stays here."""
