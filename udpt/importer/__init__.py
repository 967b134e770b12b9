"""Importing a UDPT database: reading its file (pure) apart from writing the log."""
