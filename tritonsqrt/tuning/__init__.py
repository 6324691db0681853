"""Launch-config tuning: the cache and shipped configs (`cache`) and the warm-up command
that fills them (`warmup`)."""
