"""The I/O layer: media files through ffmpeg, shards on disk, the MLflow tracking store. Pure code never imports it."""
