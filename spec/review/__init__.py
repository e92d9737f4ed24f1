"""What a reviewer reads about a change: the graph-aware diff, its bullets, its charts."""
