"""Templates: PR bodies, check summaries, pages."""
