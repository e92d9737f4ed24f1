"""The GitHub App: webhooks, queue, checks, suggestion pull requests, the fake GitHub."""
