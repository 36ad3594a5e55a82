"""The Runbooks API (Aviator's `/api/v1/runbook`): create, read and follow up runbooks.

`requests` checks bodies (pure: every bad field a 400 naming it), `service` stores runbooks
and starts or signals their workflow (workflows/runbook.py), `routes` holds the routes.
"""
