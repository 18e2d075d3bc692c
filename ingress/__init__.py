"""The HTTP adapter: legacy /export, polls from the replicated status table, file serving."""
