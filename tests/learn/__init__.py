"""Learning loop: opportunities, the Prompt Guard, suggestions."""
