"""Platform-neutral commands and diagnostics. Every chat adapter dispatches here."""
