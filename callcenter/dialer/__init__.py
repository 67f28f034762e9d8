"""The outbound dialer: campaigns, list upload, compliance, pacing, the dial loop."""
