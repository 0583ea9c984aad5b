"""Background jobs of the upload pipeline (run by RQ workers) and the HLS
directory watcher. Jobs take primitive arguments and are idempotent."""
