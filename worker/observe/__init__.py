"""What a fleet is doing, read from Redis: queues, workers, the flow of jobs in and out.

Shared by ``routeq status``, the workers' Prometheus gauges and the dashboard, so the three agree
on what "depth", "lost" or "out per minute" mean. Reads only: nothing here changes state.
"""
