"""A minimal Django site that hands spreadsheet exports to export-worker."""
