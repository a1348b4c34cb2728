"""Turn-taking and the per-guild loop that ties listening, thinking and speaking together."""
