"""Who may do what: callers and scopes, tenant quotas, per-key rate limits."""
