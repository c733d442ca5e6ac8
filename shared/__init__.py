"""Code shared by every TheSet cloud function and the sync worker."""
