"""The Automations API (NOBA Command Center's document)."""
