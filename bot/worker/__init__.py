"""The worker process: consumes the delivery stream and dispatches to the routers."""
