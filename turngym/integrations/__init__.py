"""Adapters that plug turngym environments into other training libraries (`turngym.integrations.trl`: TRL)."""
