"""HTTP API (twisted.web): agents, admin, reports, campaigns, /metrics."""
