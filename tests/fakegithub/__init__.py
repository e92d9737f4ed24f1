"""A fake GitHub for the bot's tests (placeholder; full guide below once written)."""
