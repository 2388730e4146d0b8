"""Reports: CSV exports and scheduled reports by email."""
