"""The compliance console: inbox, alert pages, case workflow, audit trail and case export over
the alert store (``surveillance console``; see docs/console.md)."""
