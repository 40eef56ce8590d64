"""The bulk fast path: sender processes, the event loop, batches, claims, statements, throttle."""
